// Verilator harness of the pixel top (hw/pixel_top.py) behind a generic extern "C" shim.
//
// Shim contract (sim/harness/pixel.py declares every argtype in one place):
//   ld_create / ld_destroy        opaque handle around one model instance
//   ld_reset(h, cycles)           synchronous reset
//   ld_set_params(h, words, n)    the wide `params` port, 32-bit words, LSB word first
//   ld_push_bursts(h, data, lens, n, case_end)
//                                 queue bursts (one packet per burst); case_end=1 marks the end of
//                                 a case: the driver waits for the output to go quiet after it
//   ld_run(h, max_cycles, quiet, stall, seed, hang_cycles)
//                                 run the per-cycle loop in C++ until every queued burst is sent and
//                                 the output has been quiet `quiet` cycles after the last case end;
//                                 returns cycles run, or -1 if in_ready stayed low `hang_cycles`
//                                 cycles with no output beat either
//   ld_pull_beats / ld_pull_status / ld_pull_case_ends
//                                 move collected results out (returns how many were copied)
//   ld_counters(h, out, n)        RX counters (COUNTER_NAMES order)
//   ld_busy_cycles(h)             cycles from the first accepted input beat to the later of the last
//                                 input beat and the last output beat
// The per-cycle loop stays in C++; Python only moves arrays. Another top can reuse the shim shape.
#include <cstdint>
#include <cstring>
#include <deque>
#include <random>
#include <vector>

#include "Vtop.h"
#include "verilated.h"

#ifndef LD_NBYTES
#error "LD_NBYTES (csi2_lanes_bytes) must be defined"
#endif

namespace {

struct Beat {
    uint64_t data;
    uint32_t n;
    bool last;
    bool case_end;
};

struct Harness {
    VerilatedContext ctx;
    Vtop* top;
    std::deque<Beat> beats;
    std::vector<uint32_t> out_beats, status;
    std::vector<int64_t> case_ends;
    int64_t cycle = 0, first_in = -1, last_in = -1, last_out = -1;

    Harness() { top = new Vtop{&ctx}; }
    ~Harness() {
        top->final();
        delete top;
    }
    void tick() {
        top->clk = 1;
        top->eval();
        top->clk = 0;
        top->eval();
        cycle++;
    }
};

template <typename T, typename W>
void set_wide(T& port, const W* words, int n) {
    for (int i = 0; i < n; i++) port[i] = words[i];
}

}  // namespace

extern "C" {

void* ld_create() {
    auto* h = new Harness();
    h->top->clk = 0;
    h->top->rst = 0;
    h->top->in_valid = 0;
    h->top->out_ready = 0;
    h->top->eval();
    return h;
}

void ld_destroy(void* p) { delete static_cast<Harness*>(p); }

void ld_reset(void* p, int cycles) {
    auto* h = static_cast<Harness*>(p);
    h->top->rst = 1;
    h->top->in_valid = 0;
    for (int i = 0; i < cycles; i++) h->tick();
    h->top->rst = 0;
    h->top->eval();
}

void ld_set_params(void* p, const uint32_t* words, int n) {
    auto* h = static_cast<Harness*>(p);
    set_wide(h->top->params, words, n);
    h->top->eval();
}

int ld_push_bursts(void* p, const uint8_t* data, const int32_t* lens, int n, int case_end) {
    auto* h = static_cast<Harness*>(p);
    int64_t off = 0;
    for (int b = 0; b < n; b++) {
        int32_t len = lens[b];
        for (int32_t s = 0; s < len; s += LD_NBYTES) {
            Beat bt{0, 0, false, false};
            int k = 0;
            for (; k < LD_NBYTES && s + k < len; k++) bt.data |= uint64_t(data[off + s + k]) << (8 * k);
            bt.n = k;
            bt.last = s + LD_NBYTES >= len;
            bt.case_end = case_end && b == n - 1 && bt.last;
            h->beats.push_back(bt);
        }
        off += len;
    }
    return int(h->beats.size());
}

int64_t ld_run(void* p, int64_t max_cycles, int64_t quiet, double stall, uint32_t seed,
               int64_t hang_cycles) {
    auto* h = static_cast<Harness*>(p);
    Vtop* t = h->top;
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> uni(0.0, 1.0);
    int64_t start = h->cycle, stuck = 0, quiet_n = 0;
    bool pausing = false;
    bool showing = false;
    while (h->cycle - start < max_cycles) {
        // drive (clock low)
        if (!showing && !pausing && !h->beats.empty()) {
            const Beat& b = h->beats.front();
            t->in_data = b.data;
            t->in_n = b.n;
            t->in_last = b.last;
            showing = true;
        }
        t->in_valid = showing;
        bool rdy = stall <= 0.0 || uni(rng) >= stall;
        t->out_ready = rdy;
        t->eval();
        // sample the handshakes of this cycle
        if (showing) {
            if (t->in_ready) {
                if (h->first_in < 0) h->first_in = h->cycle;
                h->last_in = h->cycle;
                bool ce = h->beats.front().case_end;
                h->beats.pop_front();
                showing = false;
                stuck = 0;
                if (ce) pausing = true;
            } else if (++stuck > hang_cycles) {
                t->in_valid = 0;
                return -1;
            }
        }
        bool ov = t->out_valid;
        if (rdy && ov) {
            h->out_beats.push_back(uint32_t(t->out_data) | uint32_t(t->out_first) << 24 |
                                   uint32_t(t->out_last) << 25);
            h->last_out = h->cycle;
            stuck = 0;   // output progress (an upscaling ISP holds its input back meanwhile)
        }
        if (t->status_valid) h->status.push_back(uint32_t(t->status_frame) << 8 | t->status_flags);
        h->tick();
        if (pausing || (h->beats.empty() && !showing)) {
            quiet_n = ov ? 0 : quiet_n + 1;
            if (quiet_n >= quiet) {
                quiet_n = 0;
                if (pausing) {
                    h->case_ends.push_back(int64_t(h->out_beats.size()));
                    pausing = false;
                } else {
                    break;
                }
            }
        }
    }
    t->in_valid = 0;
    t->eval();
    return h->cycle - start;
}

int64_t ld_pull_beats(void* p, uint32_t* out, int64_t cap) {
    auto* h = static_cast<Harness*>(p);
    int64_t n = std::min<int64_t>(cap, int64_t(h->out_beats.size()));
    std::memcpy(out, h->out_beats.data(), n * sizeof(uint32_t));
    h->out_beats.erase(h->out_beats.begin(), h->out_beats.begin() + n);
    return n;
}

int64_t ld_pull_status(void* p, uint32_t* out, int64_t cap) {
    auto* h = static_cast<Harness*>(p);
    int64_t n = std::min<int64_t>(cap, int64_t(h->status.size()));
    std::memcpy(out, h->status.data(), n * sizeof(uint32_t));
    h->status.erase(h->status.begin(), h->status.begin() + n);
    return n;
}

int64_t ld_pull_case_ends(void* p, int64_t* out, int64_t cap) {
    auto* h = static_cast<Harness*>(p);
    int64_t n = std::min<int64_t>(cap, int64_t(h->case_ends.size()));
    std::memcpy(out, h->case_ends.data(), n * sizeof(int64_t));
    h->case_ends.erase(h->case_ends.begin(), h->case_ends.begin() + n);
    return n;
}

int64_t ld_pending(void* p) {
    auto* h = static_cast<Harness*>(p);
    return int64_t(h->out_beats.size());
}

void ld_counters(void* p, uint32_t* out, int n) {
    auto* h = static_cast<Harness*>(p);
    Vtop* t = h->top;
    uint32_t v[] = {t->cnt_frames,     t->cnt_frames_flagged, t->cnt_ecc_corrected,
                    t->cnt_ecc_detected, t->cnt_crc_errors,   t->cnt_length_errors,
                    t->cnt_sync_errors};
    for (int i = 0; i < n && i < 7; i++) out[i] = v[i];
}

int64_t ld_busy_cycles(void* p) {
    auto* h = static_cast<Harness*>(p);
    if (h->first_in < 0) return 0;
    int64_t end = std::max(h->last_in, h->last_out);
    return end - h->first_in + 1;
}

}  // extern "C"
