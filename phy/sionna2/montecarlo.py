"""Monte Carlo error rates on the sionna-torch backend: :class:`singlink.phy.MonteCarloRunner`'s
stopping rules and 95% intervals, with the per-batch error count done in torch."""
import torch
from sionna.phy import config

from ..montecarlo import ErrorRateEstimate, MonteCarloRunner as _TFRunner, clopper_pearson  # noqa: F401


class MonteCarloRunner(_TFRunner):
    """Runs a link batch after batch until enough errors or trials, per SNR point (see
    :class:`singlink.phy.montecarlo.MonteCarloRunner`, whose parameters and results it shares).

    ``link(batch_size, snr_db) -> (bits, bits_hat)`` returns torch tensors of shape
    (batch, ..., block_length). The step runs under ``torch.no_grad()``; per batch only five
    integers leave it. ``jit_compile=True`` compiles it with ``torch.compile`` (the counterpart
    of XLA on the TF backend); the default here is eager, see :meth:`_compile_step`.
    """

    def __init__(self, link, batch_size: int = 1000, *, target_block_errors: int = 100,
                 target_bit_errors: int | None = None, max_trials: int = 100, jit_compile: bool = False):
        super().__init__(link, batch_size, target_block_errors=target_block_errors,
                         target_bit_errors=target_bit_errors, max_trials=max_trials, jit_compile=jit_compile)

    def _compile_step(self, link, jit_compile):
        @torch.no_grad()
        def step(snr_db):
            bits, bits_hat = link(self.batch_size, snr_db)
            per_block = (bits != bits_hat).to(torch.int64).sum(dim=-1)
            return torch.stack([per_block.sum(), (per_block ** 2).sum(), (per_block > 0).sum(),
                                torch.tensor(per_block.numel()), torch.tensor(bits.shape[-1])])

        if not jit_compile:
            return step
        # Sionna 2 blocks build on their first call, and one built inside the compiled step is
        # traced twice (its ``built`` flag changes: sionna.phy.Block's notes), which on this LDPC
        # link costs a second compilation of minutes. One eager call of a single row builds them
        # first; Sionna's generator is put back so the runner's draws are those of a run without it.
        rng = config.torch_rng()
        state = rng.get_state()
        with torch.no_grad():
            link(1, torch.tensor(0.0))
        rng.set_state(state)
        return torch.compile(step)

    def _tally(self, snr_db: float) -> list[int]:
        return self._step(torch.tensor(snr_db, dtype=torch.float32)).tolist()


def count_errors(step, batches: int) -> tuple[int, int, int, int]:
    """Call ``step() -> (bits, bits_hat)`` (torch tensors (..., k), one code block per row)
    ``batches`` times and count ``(bit_errors, bits, block_errors, blocks)``: the tally of a
    hand-written Sionna loop, for comparing one against :class:`MonteCarloRunner` (``benchmarks/``)."""
    bit_errors = block_errors = bits_total = blocks = 0
    for _ in range(batches):
        bits, bits_hat = step()
        err = (bits != bits_hat).reshape(-1, bits.shape[-1])
        bit_errors += int(err.sum())
        block_errors += int(err.any(dim=-1).sum())
        bits_total += err.numel()
        blocks += err.shape[0]
    return bit_errors, bits_total, block_errors, blocks
