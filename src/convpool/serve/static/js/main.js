// The explorer's entry point: load the presets and the ops, set up the four views and the tabs.
import { api } from "./common.js";
import { initBackward, resetGradient, showBackward } from "./backward.js";
import { initNetwork, showNetwork } from "./network.js";
import { initShift, showShift } from "./shift.js";
import { state } from "./state.js";
import { initWorkbench, refresh } from "./workbench.js";

const VIEWS = ["workbench", "backward", "shift", "network"];

function show(view) {
  if (!VIEWS.includes(view)) view = "workbench";
  for (const v of VIEWS) {
    document.getElementById(`view-${v}`).classList.toggle("active", v === view);
    document.getElementById(`tab-${v}`).setAttribute("aria-selected", String(v === view));
  }
  if (view === "backward") resetGradient();
  showBackward(view === "backward");
  showShift(view === "shift");
  showNetwork(view === "network");
  if (location.hash !== `#${view}`) history.replaceState(null, "", `#${view}`);
}

async function main() {
  try {
    [state.presets, state.ops] = await Promise.all([api("/api/presets"), api("/api/ops")]);
  } catch (err) {
    document.querySelector("main").textContent = `The explorer could not reach its server: ${err.message}`;
    return;
  }
  initWorkbench();
  initBackward();
  initShift();
  initNetwork();
  for (const v of VIEWS) document.getElementById(`tab-${v}`).addEventListener("click", () => show(v));
  window.addEventListener("hashchange", () => show(location.hash.slice(1)));
  await refresh();
  show(location.hash.slice(1) || "workbench");
  document.body.dataset.ready = "true";
}

main();
