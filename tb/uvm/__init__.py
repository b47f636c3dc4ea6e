"""pyuvm verification environment around npu_top (see tb/README.md, "pyuvm
environment"). Imported inside the simulator process by tb/tests/test_uvm_cocotb.py;
`jobs`, `models` and `randprog` are also usable outside it."""
