r"""What the receiver knows about a batch of N received images, handed to every restoration method.

A method that only post-processes the decoded image uses ``x_jscc`` and ``snr_db``; one that models
the channel (posterior sampling on the received symbols, :mod:`.dps`) uses the symbols and their
likelihood

.. math:: \hat z = h \odot f(x, \mathrm{SNR}_\mathrm{tx}) + n, \qquad n \sim \mathcal{CN}(0, \sigma^2),

with ``symbols`` = :math:`\hat z` (N, k) as received, ``h`` the channel gains ((N, 1) or (N, k);
None over AWGN and after an OFDM equaliser, where :math:`h = 1`), ``noise_var`` = :math:`\sigma^2`
per symbol (N, k), ``tx_snr_db`` the SNR the transmitter's encoder was told (N,) and ``codec``
the DeepJSCC whose encoder is f. After an OFDM channel the symbols are the equalised ones and
``noise_var`` their per-RE effective noise (the channel's ``no_eff``).

:meth:`singlink.receiver.Receiver.observe` fills every field from a channel's output;
:meth:`singlink.receiver.Receiver.restore` builds one from ``x_jscc`` and the SNR alone, for
methods that need nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import UsageError


@dataclass(frozen=True)
class Observation:
    """One batch as the receiver sees it (shapes in the module docstring)."""

    x_jscc: torch.Tensor
    snr_db: torch.Tensor
    symbols: torch.Tensor | None = None
    h: torch.Tensor | None = None
    noise_var: torch.Tensor | None = None
    tx_snr_db: torch.Tensor | None = None
    codec: object | None = None

    def __len__(self):
        return self.x_jscc.shape[0]

    def select(self, index: torch.Tensor) -> "Observation":
        """The observation of the images ``index`` (a 1-D index tensor), every field cut alike."""
        def cut(v):
            return v[index] if torch.is_tensor(v) else v

        return Observation(*(cut(getattr(self, f)) for f in ("x_jscc", "snr_db", "symbols", "h", "noise_var",
                                                              "tx_snr_db")), codec=self.codec)

    def require_symbols(self, method: str) -> None:
        """One line when a method that models the channel is given decoded images only."""
        if self.symbols is None or self.noise_var is None or self.codec is None:
            raise UsageError(f"{method} restores from the received symbols and needs them: call the receiver on "
                             f"the channel output, rx(y, snr_db, h=...), not rx.restore(x_jscc, snr_db)")
        k = self.codec.config.k
        if tuple(self.symbols.shape) != (len(self), k):
            raise UsageError(f"{method}: the received symbols are {tuple(self.symbols.shape)} but the DeepJSCC sends "
                             f"k = {k} per image, so ({len(self)}, {k})")
