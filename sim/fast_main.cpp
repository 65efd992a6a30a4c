// Free-running clock for a Verilated top with one input, clk: the testbench in SV does the rest
// (no --timing, no VPI, no Python) and ends the run with $finish. Prints the clock cycles and the
// wall time of the clocked loop (after the initial blocks, which load the DRAM image).
#include <chrono>
#include <cstdio>
#include <memory>

#include "Vtop.h"
#include "verilated.h"

int main(int argc, char** argv) {
    const std::unique_ptr<VerilatedContext> context{new VerilatedContext};
    context->commandArgs(argc, argv);
    const std::unique_ptr<Vtop> top{new Vtop{context.get(), "TOP"}};
    top->clk = 0;
    top->eval();
    const auto start = std::chrono::steady_clock::now();
    unsigned long long edges = 0;
    while (!context->gotFinish()) {
        context->timeInc(5);
        top->clk = !top->clk;
        top->eval();
        ++edges;
    }
    const std::chrono::duration<double> seconds = std::chrono::steady_clock::now() - start;
    top->final();
    std::printf("fast_main: clock_cycles=%llu loop_seconds=%.6f\n", edges / 2, seconds.count());
    return 0;
}
