"""Simulation: the Verilator/cocotb runner and the drivers that feed generated designs."""
