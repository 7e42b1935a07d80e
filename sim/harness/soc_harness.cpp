// Verilator harness of the logic die (hw/soc.py, top "soc") behind an extern "C" shim.
//
// Shim contract (sim/harness/soc.py declares every argtype in one place, ARGTYPES):
//   sc_create / sc_destroy          opaque handle around one model instance
//   sc_waves(h, path)               open an FST wave file (only in builds with -DSC_WAVES)
//   sc_reset(h, cycles)             synchronous reset (the SRAM keeps its contents)
//   sc_host_write(h, addr, w, n)    n 32-bit words at byte addresses addr + 4i via the host port
//   sc_host_read(h, addr, out, n)   the same, reading
//   sc_push_bursts(h, data, lens, n)
//                                   queue n input bursts (one CSI-2 packet each) for the input port
//   sc_pending_in(h)                input beats not yet taken by the die
//   sc_run(h, max_cycles, fe_target, quiet, stall, seed)
//                                   the per-cycle loop: drive queued input beats, take output
//                                   beats (out_ready low with probability `stall`), until
//                                   `fe_target` FE packets on VC 0 (the metadata frames') have left
//                                   since create (0: no target),
//                                   or irq (a HOST call or an NPU error), or the input queue is
//                                   empty and the die (busy port and output) was quiet `quiet`
//                                   cycles, or max_cycles. Returns 0 target, 1 irq, 2 quiet,
//                                   3 max cycles.
//   sc_out_bytes(h, out, cap) / sc_out_lens(h, out, cap) / sc_out_count(h)
//                                   the output bursts collected so far (bytes, then one length per
//                                   burst); pulling removes them
//   sc_fe_count(h) / sc_cycle(h) / sc_loop_ns(h)
//                                   FE packets seen, clock cycles since create, and nanoseconds
//                                   spent inside sc_run's loop (for the Python-vs-C++ figure)
// The per-cycle loop stays in C++; Python only moves arrays.
#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <random>
#include <vector>

#include "Vtop.h"
#include "verilated.h"
#ifdef SC_WAVES
#include "verilated_fst_c.h"
#endif

#ifndef SC_NBYTES
#error "SC_NBYTES (csi2_lanes_bytes) must be defined"
#endif

namespace {

struct Beat {
    uint64_t data;
    uint32_t n;
    bool last;
};

struct Harness {
    VerilatedContext ctx;
    Vtop* top;
#ifdef SC_WAVES
    VerilatedFstC* tfp = nullptr;
#endif
    int64_t cycle = 0, fe_count = 0, loop_ns = 0;
    std::deque<Beat> in;
    std::vector<uint8_t> out_bytes, cur;
    std::vector<int32_t> out_lens;

    Harness() { top = new Vtop{&ctx}; }
    ~Harness() {
#ifdef SC_WAVES
        if (tfp) {
            tfp->close();
            delete tfp;
        }
#endif
        top->final();
        delete top;
    }
    // The two halves of a clock cycle. low(): clk low with this cycle's inputs applied, settled
    // (the caller samples outputs after it); high(): the rising edge. Two evaluations per cycle.
    void low() {
        top->clk = 0;
        top->eval();
#ifdef SC_WAVES
        if (tfp) tfp->dump(uint64_t(2 * cycle));
#endif
    }
    void high() {
        top->clk = 1;
        top->eval();
#ifdef SC_WAVES
        if (tfp) tfp->dump(uint64_t(2 * cycle + 1));
#endif
        cycle++;
    }
    void tick() {
        low();
        high();
    }
    // sample the output port (before the edge); out_ready must already be driven
    void take_output() {
        if (!(top->out_valid && top->out_ready)) return;
        uint64_t d = top->out_data;
        int n = top->out_last ? int(top->out_n) : SC_NBYTES;
        for (int k = 0; k < n; k++) cur.push_back(uint8_t(d >> (8 * k)));
        if (top->out_last) {
            if (cur.size() == 4 && cur[0] == 0x01) fe_count++;  // FE on VC 0: the metadata's
            out_bytes.insert(out_bytes.end(), cur.begin(), cur.end());
            out_lens.push_back(int32_t(cur.size()));
            cur.clear();
        }
    }
    void host_cmd(uint32_t addr, bool we, uint32_t wdata) {
        top->host_cmd_addr = addr;
        top->host_cmd_we = we;
        top->host_cmd_wdata = wdata;
        top->host_cmd_valid = 1;
        for (;;) {
            top->eval();
            bool rdy = top->host_cmd_ready;
            take_output();
            tick();
            if (rdy) break;
        }
        top->host_cmd_valid = 0;
        for (int n = 0; we && n < 1000; n++) {  // a posted write: wait for the port again
            top->eval();
            if (top->host_cmd_ready) break;
            take_output();
            tick();
        }
    }
    uint32_t host_rsp() {
        top->host_rsp_ready = 1;
        uint32_t v = 0;
        for (;;) {
            top->eval();
            bool val = top->host_rsp_valid;
            v = top->host_rsp_data;
            take_output();
            tick();
            if (val) break;
        }
        top->host_rsp_ready = 0;
        return v;
    }
};

}  // namespace

extern "C" {

void* sc_create() {
    auto* h = new Harness();
    Vtop* t = h->top;
    t->clk = 0;
    t->rst = 0;
    t->in_valid = 0;
    t->out_ready = 1;
    t->host_cmd_valid = 0;
    t->host_rsp_ready = 0;
    t->eval();
    return h;
}

void sc_destroy(void* p) { delete static_cast<Harness*>(p); }

int sc_waves(void* p, const char* path) {
#ifdef SC_WAVES
    auto* h = static_cast<Harness*>(p);
    h->ctx.traceEverOn(true);
    h->tfp = new VerilatedFstC;
    h->top->trace(h->tfp, 99);
    h->tfp->open(path);
    return 1;
#else
    (void)p;
    (void)path;
    return 0;
#endif
}

void sc_reset(void* p, int cycles) {
    auto* h = static_cast<Harness*>(p);
    h->top->rst = 1;
    h->top->in_valid = 0;
    h->top->host_cmd_valid = 0;
    for (int i = 0; i < cycles; i++) h->tick();
    h->top->rst = 0;
    h->top->eval();
}

void sc_host_write(void* p, uint32_t addr, const uint32_t* words, int64_t n) {
    auto* h = static_cast<Harness*>(p);
    h->top->out_ready = 1;
    for (int64_t i = 0; i < n; i++) h->host_cmd(addr + uint32_t(4 * i), true, words[i]);
    h->top->eval();
}

void sc_host_read(void* p, uint32_t addr, uint32_t* out, int64_t n) {
    auto* h = static_cast<Harness*>(p);
    h->top->out_ready = 1;
    for (int64_t i = 0; i < n; i++) {
        h->host_cmd(addr + uint32_t(4 * i), false, 0);
        out[i] = h->host_rsp();
    }
    h->top->eval();
}

int64_t sc_push_bursts(void* p, const uint8_t* data, const int32_t* lens, int64_t n) {
    auto* h = static_cast<Harness*>(p);
    int64_t off = 0;
    for (int64_t b = 0; b < n; b++) {
        int32_t len = lens[b];
        for (int32_t s = 0; s < len; s += SC_NBYTES) {
            Beat bt{0, 0, false};
            int k = 0;
            for (; k < SC_NBYTES && s + k < len; k++)
                bt.data |= uint64_t(data[off + s + k]) << (8 * k);
            bt.n = uint32_t(k);
            bt.last = s + SC_NBYTES >= len;
            h->in.push_back(bt);
        }
        off += len;
    }
    return int64_t(h->in.size());
}

int64_t sc_pending_in(void* p) { return int64_t(static_cast<Harness*>(p)->in.size()); }

int sc_run(void* p, int64_t max_cycles, int64_t fe_target, int64_t quiet, double stall,
           uint32_t seed) {
    auto* h = static_cast<Harness*>(p);
    Vtop* t = h->top;
    auto t0 = std::chrono::steady_clock::now();
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> uni(0.0, 1.0);
    int64_t end = h->cycle + max_cycles, quiet_n = 0;
    int rc = 3;
    bool showing = false;
    while (h->cycle < end) {
        if (fe_target > 0 && h->fe_count >= fe_target) { rc = 0; break; }
        if (!showing && !h->in.empty()) {
            const Beat& b = h->in.front();
            t->in_data = b.data;
            t->in_n = b.n;
            t->in_last = b.last;
            showing = true;
        }
        t->in_valid = showing;
        t->out_ready = stall <= 0.0 || uni(rng) >= stall;
        h->low();
        if (t->irq) { rc = 1; break; }
        bool active = t->busy || t->out_valid || showing;
        if (showing && t->in_ready) {
            h->in.pop_front();
            showing = false;
        }
        h->take_output();
        h->high();
        quiet_n = active ? 0 : quiet_n + 1;
        if (h->in.empty() && quiet > 0 && quiet_n >= quiet) { rc = 2; break; }
    }
    // a beat shown but not taken stays at the queue's head (in_valid drops: the RX takes any
    // burst from its first beat on, so pausing between beats is legal)
    t->in_valid = 0;
    t->eval();
    h->loop_ns += std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::steady_clock::now() - t0).count();
    return rc;
}

int64_t sc_out_count(void* p) { return int64_t(static_cast<Harness*>(p)->out_lens.size()); }

int64_t sc_out_bytes(void* p, uint8_t* out, int64_t cap) {
    auto* h = static_cast<Harness*>(p);
    int64_t n = std::min<int64_t>(cap, int64_t(h->out_bytes.size()));
    std::memcpy(out, h->out_bytes.data(), size_t(n));
    h->out_bytes.erase(h->out_bytes.begin(), h->out_bytes.begin() + n);
    return n;
}

int64_t sc_out_lens(void* p, int32_t* out, int64_t cap) {
    auto* h = static_cast<Harness*>(p);
    int64_t n = std::min<int64_t>(cap, int64_t(h->out_lens.size()));
    std::memcpy(out, h->out_lens.data(), size_t(n) * sizeof(int32_t));
    h->out_lens.erase(h->out_lens.begin(), h->out_lens.begin() + n);
    return n;
}

int64_t sc_fe_count(void* p) { return static_cast<Harness*>(p)->fe_count; }
int64_t sc_cycle(void* p) { return static_cast<Harness*>(p)->cycle; }
int64_t sc_loop_ns(void* p) { return static_cast<Harness*>(p)->loop_ns; }

}  // extern "C"
