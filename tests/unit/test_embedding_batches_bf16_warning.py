"""bf16 inference on a CPU without native bfloat16 warns; fp32 does not."""

import warnings

import pytest
import torch

from speechbrain_ext.scoring import batching


class _Sum(torch.nn.Module):
    def forward(self, wavs, lengths):
        return wavs.sum(dim=1)[:, None, None]


@pytest.mark.parametrize(
    "native, precision, warned",
    [(False, "bf16", 1), (True, "bf16", 0), (False, "fp32", 0)],
)
def test_bf16_on_cpu_warns_only_without_native_bfloat16(
    monkeypatch, native, precision, warned
):
    monkeypatch.setattr(
        torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: native
    )
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        batching.BatchedEmbedder(_Sum(), precision=precision)
    messages = [str(w.message) for w in record
                if issubclass(w.category, RuntimeWarning)]
    assert sum("no native bfloat16" in m for m in messages) == warned
