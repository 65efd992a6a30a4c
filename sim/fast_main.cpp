// Free-running clock for a Verilated top with one input, clk: the testbench in SV does the rest
// (no --timing, no VPI, no Python) and ends the run with $finish.
#include <memory>

#include "Vtop.h"
#include "verilated.h"

int main(int argc, char** argv) {
    const std::unique_ptr<VerilatedContext> context{new VerilatedContext};
    context->commandArgs(argc, argv);
    const std::unique_ptr<Vtop> top{new Vtop{context.get(), "TOP"}};
    top->clk = 0;
    top->eval();
    while (!context->gotFinish()) {
        context->timeInc(5);
        top->clk = !top->clk;
        top->eval();
    }
    top->final();
    return 0;
}
