"""Parametrised sinc filterbank with cosine and sine band-pass filters.

Each of ``n_filters // 2`` learnable bands ``[low, high]`` yields an even
(cosine) and an odd (sine) windowed band-pass filter, so the layer has
``n_filters`` output channels: the cosine filters first, then the sine
filters. This is the filterbank MR-RawNet uses in each front-end branch
(Pariente et al., ICASSP 2020, extending SincNet).

The parameter and buffer names (``low_hz_``, ``band_hz_``, ``window_``,
``n_``) are those of the official checkpoints, so they load one to one.

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speechbrain_ext.lobes.channel_gemm import channel_matmul
from speechbrain_ext.lobes.fast_conv import _run, _use_fast_path


def hz_to_mel(hz):
    """Converts Hz to the mel scale (HTK formula).

    Arguments
    ---------
    hz : float or numpy.ndarray
        Frequencies in Hz.

    Returns
    -------
    float or numpy.ndarray
        Frequencies in mel.

    Example
    -------
    >>> round(float(hz_to_mel(1000.0)), 1)
    1000.0
    """
    return 2595 * np.log10(1 + hz / 700)


def mel_to_hz(mel):
    """Converts mel to Hz (HTK formula).

    Arguments
    ---------
    mel : float or numpy.ndarray
        Frequencies in mel.

    Returns
    -------
    float or numpy.ndarray
        Frequencies in Hz.

    Example
    -------
    >>> round(float(mel_to_hz(hz_to_mel(440.0))), 3)
    440.0
    """
    return 700 * (10 ** (mel / 2595) - 1)


class SincFilterbank(nn.Module):
    """Learnable band-pass filterbank applied as a strided convolution.

    The input is not padded here; MR-RawNet pads each branch itself.

    Arguments
    ---------
    n_filters : int
        Number of output channels (even): ``n_filters // 2`` bands, each
        giving a cosine and a sine filter.
    kernel_size : int
        Filter length in samples (odd).
    stride : int
        Hop between frames, in samples.
    sample_rate : int
        Sampling rate used to initialise and bound the bands.
    min_low_hz : float
        Lowest allowed low cut-off.
    min_band_hz : float
        Narrowest allowed band.

    Example
    -------
    >>> fb = SincFilterbank(8, kernel_size=51, stride=20)
    >>> fb(torch.randn(2, 1, 1051)).shape
    torch.Size([2, 8, 51])
    """

    def __init__(
        self,
        n_filters,
        kernel_size,
        stride,
        sample_rate=16000,
        min_low_hz=50.0,
        min_band_hz=50.0,
    ):
        super().__init__()
        if kernel_size % 2 == 0 or n_filters % 2:
            raise ValueError(
                "SincFilterbank needs an odd kernel_size and an even "
                f"n_filters, got kernel_size={kernel_size}, "
                f"n_filters={n_filters}"
            )
        self.n_filters = n_filters
        self.kernel_size = kernel_size
        self.stride = stride
        self.sample_rate = sample_rate
        self.min_low_hz = min_low_hz
        self.min_band_hz = min_band_hz
        half = kernel_size // 2
        n_bands = n_filters // 2

        # Mel-spaced band edges from 30 Hz to Nyquist minus the minima.
        top = sample_rate / 2 - (min_low_hz + min_band_hz)
        mel = np.linspace(
            hz_to_mel(30.0), hz_to_mel(top), n_bands + 1, dtype="float32"
        )
        edges = mel_to_hz(mel)
        self.low_hz_ = nn.Parameter(torch.from_numpy(edges[:-1]).view(-1, 1))
        self.band_hz_ = nn.Parameter(
            torch.from_numpy(np.diff(edges)).view(-1, 1)
        )
        # Left half of a Hamming window and of the time axis (in radians).
        window = np.hamming(kernel_size)[:half]
        self.register_buffer("window_", torch.from_numpy(window).float())
        t = torch.arange(-half, 0.0).view(1, -1)
        self.register_buffer("n_", 2 * math.pi * t / sample_rate)

    def band_edges(self):
        """Returns the effective low and high cut-offs, in Hz.

        Returns
        -------
        tuple of torch.Tensor
            ``(low, high)``, each ``[n_filters // 2, 1]``.

        Example
        -------
        >>> low, high = SincFilterbank(8, 51, 20).band_edges()
        >>> bool((high > low).all())
        True
        """
        low = self.min_low_hz + self.low_hz_.abs()
        high = torch.clamp(
            low + self.min_band_hz + self.band_hz_.abs(),
            self.min_low_hz,
            self.sample_rate / 2,
        )
        return low, high

    def filters(self):
        """Computes the ``[n_filters, 1, kernel_size]`` filter bank.

        Returns
        -------
        torch.Tensor
            Cosine filters followed by sine filters.

        Example
        -------
        >>> SincFilterbank(8, 51, 20).filters().shape
        torch.Size([8, 1, 51])
        """
        low, high = self.band_edges()
        band = high - low  # [n_bands, 1]
        arg_low = low * self.n_  # [n_bands, half]
        arg_high = high * self.n_
        half_n = self.n_ / 2
        cos_left = (arg_high.sin() - arg_low.sin()) / half_n * self.window_
        sin_left = (arg_low.cos() - arg_high.cos()) / half_n * self.window_
        cos_filt = torch.cat([cos_left, 2 * band, cos_left.flip(1)], dim=1)
        sin_filt = torch.cat(
            [sin_left, torch.zeros_like(band), -sin_left.flip(1)], dim=1
        )
        bank = torch.cat([cos_filt, sin_filt], dim=0) / (2 * band.repeat(2, 1))
        return bank.unsqueeze(1)

    def forward(self, x):
        """Filters a waveform.

        Arguments
        ---------
        x : torch.Tensor
            Waveform ``[B, 1, T]``.

        Returns
        -------
        torch.Tensor
            Filter outputs ``[B, n_filters, frames]``.
        """
        filters = self.filters()
        if x.shape[1] != 1 or not _use_fast_path(x, filters):
            return F.conv1d(x, filters, stride=self.stride)
        return _run(
            "sinc", filters, self.stride, x,
            lambda t: F.conv1d(t, filters, stride=self.stride),
            lambda t: self._frames_product(t, filters),
        )

    def _frames_product(self, x, filters):
        """The filterbank as one matrix product per utterance: the
        waveform's overlapping frames ``[K, frames]`` times the filters
        (a one-channel strided convolution is a slow case for oneDNN's
        convolution kernels)."""
        frames = x[:, 0].unfold(-1, self.kernel_size, self.stride)
        frames = frames.contiguous().transpose(1, 2)  # [B, K, frames]
        return channel_matmul(filters[:, 0], frames)
