"""cocotb test modules (run inside the simulator by presil.tb.runner)."""
