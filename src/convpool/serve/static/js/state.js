// The layer settings the Workbench and Backward views share, and the request they make.
import { api } from "./common.js";

export const state = {
  presets: null, // {inputs, kernels} from /api/presets
  ops: null, // per op: description, combine, reduce, fields (from /api/ops)
  input: [[0]],
  inputName: "worked",
  op: "conv",
  kernel: [[1, 0, -1], [1, 0, -1], [1, 0, -1]],
  kernelSize: [3, 3],
  stride: 1,
  padding: 0, // an int, "same" or "valid"
  paddingMode: "", // "" is the op's default
  dilation: 1,
  ceilMode: false,
  countIncludePad: true,
  p: 2,
  beta: 1,
  selected: null, // [i, j] of the output cell the Workbench shows
  listeners: [],
};

export function onChange(fn) {
  state.listeners.push(fn);
}

export function changed(source) {
  for (const fn of state.listeners) fn(source);
}

// The body of POST /api/layer for `op` with the shared settings (only the fields `op` takes).
export function layerRequest(op = state.op, gradOutput = null) {
  const fields = state.ops[op].fields;
  const body = { op, input: state.input };
  if ("kernel" in fields) body.kernel = state.kernel;
  if ("kernel_size" in fields) body.kernel_size = state.kernelSize;
  if ("stride" in fields) body.stride = state.stride;
  if ("padding" in fields) body.padding = state.padding;
  if ("padding_mode" in fields && state.paddingMode) body.padding_mode = state.paddingMode;
  if ("dilation" in fields) body.dilation = state.dilation;
  if ("ceil_mode" in fields) body.ceil_mode = state.ceilMode;
  if ("count_include_pad" in fields) body.count_include_pad = state.countIncludePad;
  if ("p" in fields) body.p = state.p;
  if ("beta" in fields) body.beta = state.beta;
  if (gradOutput) body.grad_output = gradOutput;
  return body;
}

export function runLayer(op, gradOutput) {
  return api("/api/layer", layerRequest(op, gradOutput));
}

export const OP_NAMES = {
  conv: "convolution",
  max: "max pooling",
  avg: "average pooling",
  median: "median pooling",
  min: "min pooling",
  lp: "Lp pooling",
  gem: "GeM pooling",
  lse: "log-mean-exp pooling",
  maxplus: "max-plus convolution",
  minplus: "min-plus convolution",
};
