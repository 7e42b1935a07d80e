// Verilator harness of the NPU top (hw/npu.py, built with backdoor=True) behind an extern "C" shim.
//
// Shim contract (sim/harness/npu.py declares every argtype in one place, ARGTYPES):
//   np_create / np_destroy          opaque handle around one model instance
//   np_waves(h, path)               open an FST wave file (only in builds with -DNP_WAVES)
//   np_reset(h, cycles)             synchronous reset (the SRAM keeps its contents)
//   np_bd_write(h, line, data, n)   n SRAM lines through the backdoor, one per cycle
//   np_bd_read(h, line, out, n)     n SRAM lines through the backdoor (pipelined)
//   np_host_write(h, addr, w, n)    n 32-bit words at byte addresses addr + 4i via the host port
//   np_host_read(h, addr, out, n)   the same, reading
//   np_run(h, max_cycles, stop_index)
//                                   clock until STATUS done/host_wait/error, or the instruction
//                                   `stop_index` (>= 0) retires, or max_cycles; returns
//                                   0 done, 1 host, 2 error, 3 timeout, 4 stop_index retired
//   np_trace_len / np_trace(h, out, cap) / np_trace_clear
//                                   (instruction index, issue cycle, retire cycle) rows, int64,
//                                   recorded in every clock (run loop and host-port accesses)
//   np_cycle(h)                     clock cycles since create
// The per-cycle loop stays in C++; Python only moves arrays. Verilator spells the stream ports'
// "__" as "___05F" (host_cmd__valid -> host_cmd___05Fvalid).
#include <cstdint>
#include <cstring>
#include <vector>

#include "Vtop.h"
#include "verilated.h"
#ifdef NP_WAVES
#include "verilated_fst_c.h"
#endif

#ifndef NP_W
#error "NP_W (SRAM line bytes) must be defined"
#endif
#ifndef NP_NTRACE
#error "NP_NTRACE (trace port pairs) must be defined"
#endif
#ifndef NP_IB
#error "NP_IB (instruction index bits) must be defined"
#endif
#ifndef NP_LAT
#error "NP_LAT (SRAM read latency, hw.npu_if.sram_read_latency) must be defined"
#endif

namespace {

// ---- wide-port helpers (Verilator: <=32 bits IData/SData/CData, <=64 QData, else VlWide)
template <std::size_t N>
void put_bytes(VlWide<N>& p, const uint8_t* b, int n) {
    for (std::size_t i = 0; i < N; i++) {
        uint32_t w = 0;
        for (int k = 0; k < 4; k++) {
            int j = int(4 * i) + k;
            if (j < n) w |= uint32_t(b[j]) << (8 * k);
        }
        p[i] = w;
    }
}
inline void put_bytes(QData& p, const uint8_t* b, int n) {
    uint64_t v = 0;
    for (int j = 0; j < n && j < 8; j++) v |= uint64_t(b[j]) << (8 * j);
    p = v;
}
template <std::size_t N>
void get_bytes(const VlWide<N>& p, uint8_t* b, int n) {
    for (int j = 0; j < n; j++) b[j] = uint8_t(p[j / 4] >> (8 * (j % 4)));
}
inline void get_bytes(const QData& p, uint8_t* b, int n) {
    for (int j = 0; j < n && j < 8; j++) b[j] = uint8_t(p >> (8 * j));
}
template <std::size_t N>
uint64_t bits(const VlWide<N>& p, int lo, int w) {
    uint64_t v = 0;
    for (int i = 0; i < w; i++) {
        int b = lo + i;
        v |= uint64_t((p[b / 32] >> (b % 32)) & 1u) << i;
    }
    return v;
}
inline uint64_t bits(uint64_t p, int lo, int w) { return (p >> lo) & ((uint64_t(1) << w) - 1); }

struct Row {
    int64_t index, issue, retire;
};

struct Harness {
    VerilatedContext ctx;
    Vtop* top;
#ifdef NP_WAVES
    VerilatedFstC* tfp = nullptr;
#endif
    int64_t cycle = 0;
    std::vector<Row> rows;
    std::vector<int64_t> pos;  // instruction index -> row
    int64_t stop_index = -1;
    bool stop_hit = false;

    Harness() { top = new Vtop{&ctx}; }
    ~Harness() {
#ifdef NP_WAVES
        if (tfp) {
            tfp->close();
            delete tfp;
        }
#endif
        top->final();
        delete top;
    }
    void record() {
        uint8_t iv = top->issue_valid, rv = top->retire_valid;
        if (!(iv | rv)) return;
        for (int q = 0; q < NP_NTRACE; q++) {
            if (iv >> q & 1) {
                int64_t idx = int64_t(bits(top->issue_index, q * NP_IB, NP_IB));
                if (int64_t(pos.size()) <= idx) pos.resize(idx + 1, -1);
                pos[idx] = int64_t(rows.size());
                rows.push_back({idx, cycle, -1});
            }
        }
        for (int q = 0; q < NP_NTRACE; q++) {
            if (rv >> q & 1) {
                int64_t idx = int64_t(bits(top->retire_index, q * NP_IB, NP_IB));
                if (idx < int64_t(pos.size()) && pos[idx] >= 0) rows[pos[idx]].retire = cycle;
                if (idx == stop_index) stop_hit = true;
            }
        }
    }
    // one clock cycle; the trace ports are sampled before the rising edge. `settle`: evaluate
    // first (inputs changed since the last eval); the run loop changes no input and skips it.
    void tick(bool settle = true) {
        if (settle) top->eval();
        record();
        top->clk = 1;
        top->eval();
#ifdef NP_WAVES
        if (tfp) tfp->dump(uint64_t(2 * cycle + 1));
#endif
        top->clk = 0;
        top->eval();
        cycle++;
#ifdef NP_WAVES
        if (tfp) tfp->dump(uint64_t(2 * cycle));
#endif
    }
    void host_cmd(uint32_t addr, bool we, uint32_t wdata) {
        auto& p = top->host_cmd___05Fpayload;  // {wdata[64:33], we[32], addr[31:0]}
        p[0] = addr;
        p[1] = uint32_t(we) | (wdata << 1);
        p[2] = wdata >> 31;
        top->host_cmd___05Fvalid = 1;
        for (;;) {
            top->eval();
            bool rdy = top->host_cmd___05Fready;
            tick();
            if (rdy) break;
        }
        top->host_cmd___05Fvalid = 0;
        // a write is posted: wait until the port is ready again (the SRAM write was accepted)
        for (int n = 0; we && n < 1000; n++) {
            top->eval();
            if (top->host_cmd___05Fready) break;
            tick();
        }
    }
    uint32_t host_rsp() {
        top->host_rsp___05Fready = 1;
        uint32_t v = 0;
        for (;;) {
            top->eval();
            bool val = top->host_rsp___05Fvalid;
            v = top->host_rsp___05Fpayload;
            tick();
            if (val) break;
        }
        top->host_rsp___05Fready = 0;
        return v;
    }
};

}  // namespace

extern "C" {

void* np_create() {
    auto* h = new Harness();
    Vtop* t = h->top;
    t->clk = 0;
    t->rst = 0;
    t->host_cmd___05Fvalid = 0;
    t->host_rsp___05Fready = 0;
    t->bd_we = 0;
    t->bd_re = 0;
    t->eval();
    return h;
}

void np_destroy(void* p) { delete static_cast<Harness*>(p); }

int np_waves(void* p, const char* path) {
#ifdef NP_WAVES
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

void np_reset(void* p, int cycles) {
    auto* h = static_cast<Harness*>(p);
    h->top->rst = 1;
    h->top->host_cmd___05Fvalid = 0;
    h->top->bd_we = 0;
    h->top->bd_re = 0;
    for (int i = 0; i < cycles; i++) h->tick();
    h->top->rst = 0;
    h->top->eval();
}

void np_bd_write(void* p, int64_t line, const uint8_t* data, int64_t n) {
    auto* h = static_cast<Harness*>(p);
    Vtop* t = h->top;
    for (int64_t i = 0; i < n; i++) {
        t->bd_we = 1;
        t->bd_addr = uint32_t(line + i);
        put_bytes(t->bd_wdata, data + i * NP_W, NP_W);
        h->tick();
    }
    t->bd_we = 0;
    t->eval();
}

void np_bd_read(void* p, int64_t line, uint8_t* out, int64_t n) {
    auto* h = static_cast<Harness*>(p);
    Vtop* t = h->top;
    const int lat = NP_LAT;
    for (int64_t i = 0; i < n + lat; i++) {
        t->bd_re = i < n;
        t->bd_addr = uint32_t(line + (i < n ? i : 0));
        t->eval();
        if (i >= lat) get_bytes(t->bd_rdata, out + (i - lat) * NP_W, NP_W);
        h->tick();
    }
    t->bd_re = 0;
    t->eval();
}

void np_host_write(void* p, uint32_t addr, const uint32_t* words, int64_t n) {
    auto* h = static_cast<Harness*>(p);
    for (int64_t i = 0; i < n; i++) h->host_cmd(addr + uint32_t(4 * i), true, words[i]);
    h->top->eval();
}

void np_host_read(void* p, uint32_t addr, uint32_t* out, int64_t n) {
    auto* h = static_cast<Harness*>(p);
    for (int64_t i = 0; i < n; i++) {
        h->host_cmd(addr + uint32_t(4 * i), false, 0);
        out[i] = h->host_rsp();
    }
    h->top->eval();
}

int np_run(void* p, int64_t max_cycles, int64_t stop_index) {
    auto* h = static_cast<Harness*>(p);
    Vtop* t = h->top;
    h->stop_index = stop_index;
    h->stop_hit = false;
    int64_t end = h->cycle + max_cycles;
    int rc = 3;
    t->eval();
    while (h->cycle < end) {
        uint8_t st = t->status;  // bit0 busy, 1 done, 2 host_wait, 3 error
        if (st & 8) { rc = 2; break; }
        if (st & 4) { rc = 1; break; }
        if (st & 2) { rc = 0; break; }
        h->tick(false);
        if (h->stop_hit) { rc = 4; break; }
    }
    h->stop_index = -1;
    return rc;
}

int64_t np_trace_len(void* p) { return int64_t(static_cast<Harness*>(p)->rows.size()); }

int64_t np_trace(void* p, int64_t* out, int64_t cap) {
    auto* h = static_cast<Harness*>(p);
    int64_t n = std::min<int64_t>(cap, int64_t(h->rows.size()));
    for (int64_t i = 0; i < n; i++) {
        out[3 * i] = h->rows[i].index;
        out[3 * i + 1] = h->rows[i].issue;
        out[3 * i + 2] = h->rows[i].retire;
    }
    return n;
}

void np_trace_clear(void* p) {
    auto* h = static_cast<Harness*>(p);
    h->rows.clear();
    h->pos.clear();
}

int64_t np_cycle(void* p) { return static_cast<Harness*>(p)->cycle; }

}  // extern "C"
