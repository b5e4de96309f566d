"""The CPU inference kernels of ``fast_conv`` equal the stock torch layers,
and run only where the mode and the timed decisions allow.

Values are compared in float64 (so only the summation order can differ)
for batch 1 (the per-utterance GEMM path) and larger batches (the batched
GEMM path), with and without bias, on contiguous and strided inputs, with
the alternative kernels forced on; with autograd on, values and gradients
equal the stock layers exactly.
"""

import pytest
import torch
from torch import nn

from speechbrain_ext.lobes import fast_conv, kernel_timing
from speechbrain_ext.lobes.fast_conv import (
    DepthwiseConv1d,
    DilatedConv1d,
    PairTransposedConv1d,
    PointwiseConv1d,
    cpu_kernels,
    pointwise_conv1d,
)


@pytest.fixture(autouse=True)
def _fresh_choices():
    """Each test starts with no timed decisions and the default mode."""
    fast_conv.clear_kernel_choices()
    with cpu_kernels("auto"):
        yield
    fast_conv.clear_kernel_choices()


def _check_same(fast, stock_forward, x):
    """The inference fast path gives the stock layer's output; with autograd
    on, the layer is the stock layer (same values and gradients)."""
    with torch.no_grad():
        y_fast = fast(x)
        y_stock = stock_forward(fast, x)
    assert y_fast.shape == y_stock.shape
    torch.testing.assert_close(y_fast, y_stock, rtol=1e-10, atol=1e-10)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), y_stock, rtol=1e-10, atol=1e-10)

    x1 = x.clone().requires_grad_(True)
    x2 = x.clone().requires_grad_(True)
    y1, y2 = fast(x1), stock_forward(fast, x2)
    torch.testing.assert_close(y1, y2, rtol=0, atol=0)
    grad_out = torch.randn_like(y1)
    params = list(fast.parameters())
    g1 = torch.autograd.grad(y1, [x1, *params], grad_out)
    g2 = torch.autograd.grad(y2, [x2, *params], grad_out)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("bias", [True, False])
def test_pointwise_equals_conv1d(batch, bias):
    torch.manual_seed(0)
    conv = PointwiseConv1d(5, 7, bias=bias).double()
    x = torch.randn(batch, 5, 11, dtype=torch.float64)
    _check_same(conv, nn.Conv1d.forward, x)


def test_pointwise_on_strided_input():
    """A channel slice of a bigger tensor (as Res2Net's split gives)."""
    torch.manual_seed(1)
    conv = PointwiseConv1d(4, 6).double()
    for batch in (1, 2):
        big = torch.randn(batch, 10, 9, dtype=torch.float64)
        x = big[:, 3:7]
        assert not x.is_contiguous() or batch == 1
        with torch.no_grad(), cpu_kernels("fast"):
            torch.testing.assert_close(
                conv(x), nn.Conv1d.forward(conv, x), rtol=1e-10, atol=1e-10
            )


def test_pointwise_function_accepts_2d_weight():
    torch.manual_seed(2)
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    w = torch.randn(5, 3, dtype=torch.float64)
    ref = torch.nn.functional.conv1d(x, w.unsqueeze(-1))
    for mode in ("fast", "stock", "auto"):
        with torch.no_grad(), cpu_kernels(mode):
            torch.testing.assert_close(pointwise_conv1d(x, w), ref)


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("dilation", [1, 2, 8])
@pytest.mark.parametrize("frames", [1, 8, 30])
def test_depthwise_equals_conv1d(batch, dilation, frames):
    """Includes sequences no longer than the dilation (only the centre
    tap sees data)."""
    torch.manual_seed(3)
    conv = DepthwiseConv1d(6, dilation).double()
    x = torch.randn(batch, 6, frames, dtype=torch.float64)
    _check_same(conv, nn.Conv1d.forward, x)


def test_depthwise_with_bias():
    torch.manual_seed(4)
    conv = DepthwiseConv1d(3, 4, bias=True).double()
    x = torch.randn(2, 3, 17, dtype=torch.float64)
    _check_same(conv, nn.Conv1d.forward, x)


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("kernel,dilation", [(3, 2), (5, 1), (3, 9)])
@pytest.mark.parametrize("bias", [True, False])
def test_dilated_equals_conv1d(batch, kernel, dilation, bias):
    """Includes a dilation so large that outer taps fall off both ends."""
    torch.manual_seed(7)
    conv = DilatedConv1d(4, 5, kernel, dilation, bias=bias).double()
    x = torch.randn(batch, 4, 12, dtype=torch.float64)
    _check_same(conv, nn.Conv1d.forward, x)


def test_dilated_rejects_even_kernel():
    with pytest.raises(ValueError, match="odd kernel_size"):
        DilatedConv1d(2, 2, kernel_size=4)


@pytest.mark.parametrize("batch", [1, 4])
def test_pair_transposed_equals_conv_transpose(batch):
    torch.manual_seed(5)
    conv = PairTransposedConv1d(5, 3).double()
    x = torch.randn(batch, 5, 7, dtype=torch.float64)
    _check_same(conv, nn.ConvTranspose1d.forward, x)


def test_pair_transposed_without_bias():
    torch.manual_seed(6)
    conv = PairTransposedConv1d(4, 4).double()
    conv.bias = None
    x = torch.randn(2, 4, 5, dtype=torch.float64)
    _check_same(conv, nn.ConvTranspose1d.forward, x)


@pytest.mark.parametrize("change", ["load_state_dict", "in_place"])
@pytest.mark.parametrize("layer, stock", [
    (lambda: PairTransposedConv1d(4, 3), nn.ConvTranspose1d.forward),
    (lambda: DilatedConv1d(4, 3, 3, 2), nn.Conv1d.forward),
])
def test_kernel_weight_layouts_follow_changed_weights(layer, stock, change):
    """The weights rearranged for the alternative kernels are kept between
    calls, and rebuilt as soon as a weight changes in place."""
    torch.manual_seed(8)
    conv = layer().double()
    x = torch.randn(1, 4, 9, dtype=torch.float64)
    with cpu_kernels("fast"), torch.no_grad():
        first = conv(x)
        cached = {k: v[2] for k, v in vars(conv).items()
                  if k.startswith(("_pair", "_tap"))}
        assert cached  # the rearranged weights are kept ...
        conv(x)
        assert all(vars(conv)[k][2] is v for k, v in cached.items())  # reused
        if change == "load_state_dict":
            state = {k: v * 3 - 1 for k, v in conv.state_dict().items()}
            conv.load_state_dict(state)
        else:
            conv.weight.mul_(-2)
            conv.bias.add_(1)
        torch.testing.assert_close(conv(x), stock(conv, x))
        assert not torch.allclose(conv(x), first)
    with cpu_kernels("fast"), torch.inference_mode():
        torch.testing.assert_close(conv(x), stock(conv, x))


def test_state_dict_keys_and_shapes_match_stock_layers():
    """Checkpoints move between the fast and the stock layers unchanged."""
    pairs = [
        (PointwiseConv1d(4, 6), nn.Conv1d(4, 6, 1)),
        (
            DepthwiseConv1d(4, 2),
            nn.Conv1d(4, 4, 3, padding=2, dilation=2, groups=4, bias=False),
        ),
        (PairTransposedConv1d(4, 6), nn.ConvTranspose1d(4, 6, 2, stride=2)),
        (DilatedConv1d(4, 6, 3, 2), nn.Conv1d(4, 6, 3, padding=2, dilation=2)),
    ]
    for fast, stock in pairs:
        fast_shapes = {k: v.shape for k, v in fast.state_dict().items()}
        stock_shapes = {k: v.shape for k, v in stock.state_dict().items()}
        assert fast_shapes == stock_shapes
        stock.load_state_dict(fast.state_dict(), strict=True)


def test_only_cpu_inference_takes_the_fast_path(monkeypatch):
    """Training (autograd records) and other devices run the stock kernels;
    frozen weights on the CPU take the fast path even with autograd on.
    Checked with the CPU GEMM helper made to fail, in "fast" mode."""
    monkeypatch.setattr(fast_conv, "_mode", "fast")

    def refuse(*args, **kwargs):
        raise AssertionError("CPU fast path used")

    monkeypatch.setattr(fast_conv, "_channel_matmul", refuse)
    layers = [
        PointwiseConv1d(4, 6),
        PairTransposedConv1d(4, 6),
        DilatedConv1d(4, 6, 3, 2),
    ]
    x = torch.randn(1, 4, 5)
    for layer in layers:
        with torch.no_grad(), pytest.raises(AssertionError, match="fast"):
            layer(x)
        layer(x)  # autograd on, trainable weights: stock path
        layer(x.requires_grad_(True)).sum().backward()  # input needs grad
        x.requires_grad_(False)
        layer.requires_grad_(False)  # frozen, as EncoderClassifier does
        with pytest.raises(AssertionError, match="fast"):
            layer(x)
    x = torch.empty(2, 4, 10, device="meta")
    with torch.no_grad():
        assert layers[0].to("meta")(x).shape == (2, 6, 10)
        assert layers[1].to("meta")(x).shape == (2, 6, 20)
        assert layers[2].to("meta")(x).shape == (2, 6, 10)
        assert DepthwiseConv1d(4, 2).to("meta")(x).shape == (2, 4, 10)


def _spy_kernels(monkeypatch, layer, name):
    """Counts calls of ``layer``'s alternative kernel ``name``."""
    calls = []
    original = getattr(layer, name)

    def spy(x, *args):
        calls.append(tuple(x.shape))
        return original(x, *args)

    monkeypatch.setattr(layer, name, spy)
    return calls


def test_stock_mode_never_runs_the_alternative_kernel(monkeypatch):
    conv = DepthwiseConv1d(4, 2)
    calls = _spy_kernels(monkeypatch, conv, "_shifted_forward")
    x = torch.randn(2, 4, 16)
    with torch.no_grad(), cpu_kernels("stock"):
        torch.testing.assert_close(conv(x), nn.Conv1d.forward(conv, x))
    assert calls == []
    assert fast_conv.kernel_choices() == {}


def test_auto_mode_times_each_shape_once_and_keeps_the_faster(monkeypatch):
    """The first meeting of a shape times both kernels; later calls run
    only the kernel that was faster; a new input shape is timed again."""
    conv = DilatedConv1d(4, 4, 3, 2)
    calls = _spy_kernels(monkeypatch, conv, "_tap_forward")
    x = torch.randn(1, 4, 40)
    with torch.no_grad():
        conv(x)
        timed = len(calls)
        assert timed > 1  # warm-up and timed repetitions
        (choice,) = fast_conv.kernel_choices().values()
        for _ in range(3):
            conv(x)
        assert len(calls) == timed + (3 if choice == "fast" else 0)
        conv(torch.randn(1, 4, 41))  # same power-of-two frame bucket
        assert len(fast_conv.kernel_choices()) == 1
        conv(torch.randn(1, 4, 200))  # a new bucket: timed again
        assert len(fast_conv.kernel_choices()) == 2


def test_auto_mode_picks_the_kernel_that_was_faster(monkeypatch):
    """A deliberately slowed kernel loses the timing, whichever it is."""
    import time as time_module

    x = torch.randn(1, 4, 12)
    for slow in ("alternative", "stock"):
        fast_conv.clear_kernel_choices()
        conv = PairTransposedConv1d(4, 4)
        if slow == "alternative":
            original = conv._gemm_forward

            def slowed(t, original=original):
                time_module.sleep(0.002)
                return original(t)

            monkeypatch.setattr(conv, "_gemm_forward", slowed)
        else:
            original = nn.ConvTranspose1d.forward

            def slowed(self, t, original=original):
                time_module.sleep(0.002)
                return original(self, t)

            monkeypatch.setattr(nn.ConvTranspose1d, "forward", slowed)
        with torch.no_grad():
            conv(x)
        (choice,) = fast_conv.kernel_choices().values()
        assert choice == ("stock" if slow == "alternative" else "fast")
        monkeypatch.undo()


@pytest.mark.parametrize("slow", ["alternative", "stock"])
def test_first_call_equals_later_calls_bit_for_bit(monkeypatch, slow):
    """The call that times a new shape returns the chosen kernel's output,
    so an utterance scores the same the first time as every later time."""
    import time as time_module

    conv = DilatedConv1d(8, 8, 3, 2)
    name = "_tap_forward" if slow == "alternative" else "_conv_forward"
    original = getattr(conv, name)

    def slowed(*args, original=original):
        time_module.sleep(0.002)
        return original(*args)

    monkeypatch.setattr(conv, name, slowed)
    x = torch.randn(3, 8, 333)
    with torch.no_grad():
        first = conv(x)
        later = conv(x)
    (choice,) = fast_conv.kernel_choices().values()
    assert choice == ("stock" if slow == "alternative" else "fast")
    assert torch.equal(first, later)


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="one of"):
        fast_conv.set_cpu_kernels("fastest")


@pytest.mark.parametrize(
    "fast_time, expected", [(0.97, "stock"), (1.0, "stock"), (0.9, "fast")]
)
def test_a_near_tie_goes_to_the_stock_kernel(monkeypatch, fast_time,
                                              expected):
    """The alternative kernel is kept only when it timed CHOICE_MARGIN
    faster than the stock one: timing noise cannot pick a slower kernel."""
    times = {"stock": 1.0, "fast": fast_time}

    def fake_best_of(fn, *args):
        return times[fn.__name__]

    def stock(t):
        return t + 1

    def fast(t):
        return t + 1

    monkeypatch.setattr(kernel_timing, "best_of", fake_best_of)
    assert kernel_timing.CHOICE_MARGIN == pytest.approx(0.05)
    x = torch.randn(2, 3)
    with cpu_kernels("auto"):
        fast_conv._run("probe", x, 1, x, stock, fast)
    (choice,) = fast_conv.kernel_choices().values()
    assert choice == expected


def test_an_in_place_alternative_is_timed_on_a_copy(monkeypatch):
    """With ``trial``, the timing runs the copying stand-in: the input is
    left as given, and the first call's output is what later calls give."""
    calls = {"fast": 0, "trial": 0}

    def stock(t):
        return t * 2

    def fast(t):
        calls["fast"] += 1
        return t.mul_(2)

    def trial(t):
        calls["trial"] += 1
        return fast(t.clone())

    monkeypatch.setattr(
        kernel_timing, "best_of",
        lambda fn, t: (fn(t), 1.0 if fn is stock else 0.5)[1],
    )
    x = torch.arange(4.0)
    with cpu_kernels("auto"):
        first = fast_conv._run("probe", x, 1, x, stock, fast, trial=trial)
    assert torch.equal(x, torch.arange(4.0))  # timing left x alone
    assert calls["trial"] >= 1 + kernel_timing.TIMING_ROUNDS
    assert calls["fast"] == calls["trial"]  # only through the stand-in
    (choice,) = fast_conv.kernel_choices().values()
    assert choice == "fast"
    with cpu_kernels("auto"):
        later = fast_conv._run("probe", x, 1, x, stock, fast, trial=trial)
    assert torch.equal(first, later)
    assert later is x  # the chosen in-place kernel on the real input
