"""The logic die end to end (hw/soc.py in Verilator through sim/harness/soc.py): RAW10 CSI-2 in,
metadata CSI-2 out, every output byte compared with the golden die of sw/soc.py (the RTL's
measured KPI fields are the only values taken from the RTL).

CI tier: a small RGB network on ``tiny`` (one build; stimulus variations inside it): several
frames with one corrupted, a frame budget that times every frame out, image+metadata and
raw+metadata modes, back-pressure on the output, and the register map. Full tier: person_detect
at VGA and a 1,000-frame soak.
"""

from __future__ import annotations

import numpy as np
import pytest

from hw import regmap
from models.tflite_writer import ModelBuilder
from sw.cli.run import corrupt_frame
from sw.runtime import Device
from sw.tflite_import import load_tflite

pytestmark = pytest.mark.rtl

MODE = "64x48"


def small_rgb_net(seed: int = 0):
    """conv 3x3/2 + relu -> depthwise 3x3 -> average pool -> fully connected -> softmax (host
    tail), on a 16x16x3 int8 input with the [-1, 1] pixel convention."""
    rng = np.random.default_rng(seed)
    b = ModelBuilder(name="soc_small")
    x = b.input((1, 16, 16, 3), "int8", 2 / 255, -1)
    w = b.weights(rng.normal(0, 0.3, (8, 3, 3, 3)))
    y = b.conv2d(x, w, stride=2, activation="RELU", out_scale=0.05, out_zp=-128)
    dw = b.depthwise_weights(rng.normal(0, 0.3, (1, 3, 3, 8)))
    y = b.depthwise_conv2d(y, dw, out_scale=0.05, out_zp=-20)
    y = b.average_pool2d(y, filter=8, stride=8)
    y = b.reshape(y, (1, 8))
    fc = b.weights(rng.normal(0, 0.3, (4, 8)))
    y = b.fully_connected(y, fc, out_scale=0.1, out_zp=3)
    b.output(b.softmax(y))
    return load_tflite(b.finish(), name="soc_small")


def photos(n: int):
    import skimage.data

    names = ("astronaut", "coffee", "chelsea", "camera")
    return [getattr(skimage.data, names[k % len(names)])() for k in range(n)]


def make_device(**kw):
    return Device(small_rgb_net(), backend="rtl", config="tiny", sensor_mode=MODE, compare=True,
                  **kw)


def test_frames_corrupt_and_golden_bytes():
    """Five frames, frame 2 corrupted: one metadata frame per input frame with a continuous
    counter; frame 2 carries RX_ERROR and no tensors; every byte equals the golden die's; the
    valid frames' results equal the golden model on the golden ISP's tensor."""
    from models.golden import GoldenModel

    dev = make_device()
    try:
        imgs = photos(5)
        inputs = [dev.sensor_frame(im) for im in imgs]
        inputs[2] = corrupt_frame(inputs[2])
        out = list(dev.stream(inputs))
        assert [r.frame_counter for r in out] == list(range(5))
        assert [r.bit_exact for r in out] == [True] * 5
        assert [r.valid for r in out] == [True, True, False, True, True]
        assert out[2].errors == ["RX_ERROR"] and out[2].npu_outputs == []
        golden = GoldenModel(small_rgb_net())
        for r in out:
            assert r.kpi["cycles_npu"] > 0 if r.valid else r.kpi["cycles_npu"] == 0
        # the last valid frame's decoded outputs are the golden model's on the same tensor
        want = golden.run([dev._last_tensor.reshape(dev.compiled.inputs[0].shape)])
        assert all(np.array_equal(a, b) for a, b in zip(out[-1].outputs, want, strict=True))
        cnt = dev._rtl.counters()
        assert cnt["FRAMES_OUT"] == 5 and cnt["FRAMES_VALID"] == 4
        assert cnt["RX_CRC_ERRORS"] == 1 and cnt["RX_FRAMES"] == 5
        kpi = dev._rtl.kpi_registers()
        assert kpi["KPI_NPU"] == out[-1].kpi["cycles_npu"]
        assert kpi["KPI_TOTAL"] == out[-1].kpi["cycles_total"]
    finally:
        dev.close()


def test_timeout_and_image_mode():
    """A budget below the inference time: every frame goes out with TIMEOUT, VALID clear, no
    tensors, never merged with the next; image+metadata: the RAW8 lines are the golden ISP's
    tensor; output back-pressure changes no byte."""
    dev = make_device(fps=1e7)          # 10 cycles per frame at 100 MHz
    try:
        out = list(dev.stream(dev.sensor_frame(im) for im in photos(2)))
        assert [r.frame_counter for r in out] == [0, 1]
        assert all(r.bit_exact for r in out)
        assert all(not r.valid and r.errors == ["TIMEOUT"] for r in out)
        assert dev._rtl.counters()["TIMEOUTS"] == 2
    finally:
        dev.close()
    dev = make_device(output_mode="image+metadata")
    try:
        dev._transports()[1].stall = 0.3
        tensors = []
        for im in photos(2):
            r = dev.capture(im)
            tensors.append(dev._last_tensor)
            assert r.bit_exact and r.valid
            img = r.image.reshape(dev._last_tensor.shape).view(np.int8)
            assert np.array_equal(img, dev._last_tensor)
            assert dev._last["kpi"]["cycles_tx"] > 0
    finally:
        dev.close()


def test_npu_error_frame_and_recovery():
    """A program address the NPU refuses (misaligned): the frame leaves with NPU_ERROR, VALID
    clear and no tensors, NPU_ERRORS counts it; with the address restored the NPU (reset by the
    sequencer) infers the next frame bit-exact."""
    dev = make_device()
    try:
        imgs = photos(2)
        dev._transports()
        sim, lay = dev._rtl.sim, dev._rtl.layout
        for k in range(2):
            sim.csr_write(f"PROG{k}_ADDR", lay.prog[k] + 4)
        bad = dev.capture(imgs[0])
        assert not bad.valid and bad.errors == ["NPU_ERROR"] and bad.npu_outputs == []
        assert dev._rtl.counters()["NPU_ERRORS"] == 1
        for k in range(2):
            sim.csr_write(f"PROG{k}_ADDR", lay.prog[k])
        good = dev.capture(imgs[1])
        assert good.valid and good.bit_exact and good.frame_counter == 1
    finally:
        dev.close()


def test_raw_passthrough_mode():
    """raw+metadata: every input burst (a corrupted one included) leaves on VC 1 with only its VC
    bit and ECC byte changed, beside metadata frames equal to the golden die's; back-pressure
    changes no byte of either."""
    from sw.soc import forward, is_forwarded

    dev = make_device(output_mode="raw+metadata")
    try:
        dev._transports()[1].stall = 0.2
        inputs = [dev.sensor_frame(im) for im in photos(3)]
        inputs[1] = corrupt_frame(inputs[1])
        out = list(dev.stream(inputs))
        assert [r.bit_exact for r in out] == [True] * 3
        assert [r.valid for r in out] == [True, False, True]
        assert dev.forwarded_exact()
        sent = [b for f in inputs for b in f]
        assert dev._rtl.raw_out == forward(sent) and all(map(is_forwarded, dev._rtl.raw_out))
        assert forward(dev._rtl.raw_out) == sent        # the toggle is its own inverse
    finally:
        dev.close()


def test_soc_regmap_doc_current_and_unique():
    """docs/soc.md's table is generated from hw.regmap; offsets and names are unique and the SoC
    block sits above the NPU's CSRs."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "soc.md").read_text()
    a, b = text.index(regmap.SOC_BEGIN), text.index(regmap.SOC_END)
    assert text[a + len(regmap.SOC_BEGIN): b].strip() == regmap.soc_doc_table().strip(), \
        "run: python -m hw.regmap --update-soc docs/soc.md"
    csrs = regmap.soc_csrs()
    assert len({c.offset for c in csrs}) == len({c.name for c in csrs}) == len(csrs)
    assert regmap.SOC_CSR_BASE > regmap.CSR_BASE + 4 * regmap.CSR_WORDS


def test_soc_registers():
    """The SoC CSRs of hw.regmap read back through the host port; the NPU's CSRs stay reachable
    below them."""
    from amaranth import Shape

    from hw.config import preset
    from hw.isp import params_layout
    from sim.harness.soc import SocSim

    layout = dict(params_layout(preset("tiny")))
    with SocSim("tiny") as sim:
        assert sim.csr_read("SOC_ID") == regmap.SOC_ID_MAGIC
        assert sim.csr_read("ID") == regmap.ID_MAGIC
        for k, name in enumerate(("STAGE0_ADDR", "PROG1_ADDR", "FRAME_BUDGET", "FRAME_COUNTER")):
            sim.csr_write(name, 0xA5C31230 + 16 * k)
            assert sim.csr_read(name) == 0xA5C31230 + 16 * k
        # ISP registers hold their params_layout field's bits, read back extended by its sign
        roi_w = Shape.cast(layout["roi_w"].shape).width
        sim.csr_write("ISP_ROI_W", 0xFFFF1235)
        assert sim.csr_read("ISP_ROI_W") == 0xFFFF1235 & ((1 << roi_w) - 1)
        off = Shape.cast(layout["norm_off"].shape.elem_shape)
        assert off.signed
        sim.csr_write("ISP_NORM_OFF1", -5)
        assert sim.csr_read("ISP_NORM_OFF1") == -5 & 0xFFFFFFFF
        sim.csr_write("ISP_NORM_OFF1", 1 << (off.width - 1))      # the top bit is the sign
        assert sim.csr_read("ISP_NORM_OFF1") == -(1 << (off.width - 1)) & 0xFFFFFFFF
        # back to back reads of every group's registers, and an unmapped word reads 0
        assert [sim.csr_read(n) for n in ("SOC_ID", "ISP_ROI_W", "FRAME_COUNTER")] == \
            [regmap.SOC_ID_MAGIC, 0xFFFF1235 & ((1 << roi_w) - 1), 0xA5C31230 + 48]
        for word in (40, 128, 255):   # (128: group 8, which aliases SOC_ID on 3 group bits)
            assert int(sim.read_words(regmap.SOC_CSR_BASE + 4 * word, 1)[0]) == 0
        sim.write_mem(100, bytes(range(10)))
        assert bytes(sim.read_mem(100, 10)) == bytes(range(10))


def test_npu_host_command_right_after_reset():
    """The NPU leaves a die reset with the host port: a command in the first cycle after reset
    reaches it (the NPU's reset is its own domain's, hw/soc.py; a registered copy of the die's
    reset would hold the NPU a cycle longer and the write below would be lost)."""
    from sim.harness.soc import SocSim

    with SocSim("tiny") as sim:
        for value in (0x1230, 0x4560):
            sim.reset()
            sim.csr_write("PROG_ADDR", value)
            assert sim.csr_read("PROG_ADDR") == value


@pytest.mark.full
def test_person_detect_vga():
    """person_detect at VGA through the tiny die: three photos, bit-exact bytes, golden classes."""
    from pathlib import Path

    model = Path(__file__).resolve().parents[2] / "models" / "zoo" / "person_detect.tflite"
    dev = Device(model, backend="rtl", config="tiny", sensor_mode="640x480", compare=True)
    try:
        out = list(dev.stream(dev.sensor_frame(im) for im in photos(3)))
        assert all(r.bit_exact and r.valid for r in out)
        assert [r.result["label"] for r in out] == ["person", "no person", "no person"]
        assert all(r.kpi["cycles_total"] > r.kpi["cycles_npu"] > 0 for r in out)
    finally:
        dev.close()


@pytest.mark.full
def test_soak_1000_frames():
    """1,000 frames back to back (every 7th corrupted): no mismatch, continuous counters."""
    dev = make_device()
    try:
        imgs = photos(4)

        def inputs():
            for k in range(1000):
                b = dev.sensor_frame(imgs[k % 4])
                yield corrupt_frame(b) if k % 7 == 3 else b

        n = 0
        for k, r in enumerate(dev.stream(inputs())):
            assert r.frame_counter == k and r.bit_exact
            assert r.valid == (k % 7 != 3)
            n += 1
        assert n == 1000
    finally:
        dev.close()
