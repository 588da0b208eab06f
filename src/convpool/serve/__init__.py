"""``convpool serve``: the interactive explorer in the browser.

Every window, every number and every gradient on the page is computed by
convpool's engine through a small JSON API (FastAPI on uvicorn, the ``lab``
extra): :mod:`.app` (the app and the server), :mod:`.api` (routes),
:mod:`.schemas` (requests and answers), :mod:`.layer` (one op on one map, written
out), :mod:`.shift` (the shift experiment), :mod:`.network` (LeNet-5 on MNIST),
:mod:`.presets`; the page is plain HTML/CSS/JavaScript in ``static/``.

Nothing here is imported by the rest of convpool.
"""
