"""presil.host.mlperf: the MLPerf LoadGen harness.

`presil mlperf` runs one LoadGen test per process (run.py -> worker.py) over a
SUT (sut.py) driving a Backend (backend.py: onnxruntime FP32, the golden
model, a device through the host runtime, or the pre-silicon timing estimate
of timing.py), on a QSL (qsl.py) over dataset loaders (datasets.py); then
accuracy.py scores accuracy logs and submission.py lays out the results tree.
"""
