"""gr-singlink: singlink's DeepJSCC transmitter, Sionna channel and SING receiver as GNU Radio blocks.

Blocks (GRC ids ``singlink_gr_jscc_tx``, ``singlink_gr_sionna_channel``, ``singlink_gr_jscc_rx``):

- :class:`jscc_tx`: images (folder, files, or ``images_in`` PDUs) -> complex64 frames of k
  symbols, tagged ``packet_len``, ``image_id``, ``snr_db``, ``frame`` (and ``eob`` on the last);
- :class:`sionna_channel`: singlink's Sionna AWGN / Rayleigh block-fading channel per frame,
  seeded ``derive_seed(seed, frame)``, adding an ``h`` tag under fading;
- :class:`jscc_rx`: frames -> restored images (deepjscc, sing-zero, sing-inn) as PDUs on
  ``images_out`` and optionally PNG files.

Over the air (bursts with preamble, spread header + CRC, pilots, RRC pulses; see
:mod:`singlink_gr.burst`): :class:`burst_tx` (images -> baseband samples) and :class:`burst_rx`
(samples -> detection, timing, carrier and phase, header, SNR estimate -> images), built on
:class:`burst_source` and :class:`burst_sync` and GNU Radio's firdes, FIR filters and corr_est_cc.

Over GNU Radio's OFDM chain (one frame per image, see :mod:`singlink_gr.ofdm`): :class:`ofdm_jscc_tx`
(images -> carrier allocator, IFFT, cyclic prefix) and :class:`ofdm_jscc_rx` (Schmidl & Cox,
header/payload demux, chanest, frame equaliser, pilot phase, SNR from the header -> jscc_rx).

``singlink_gr.link`` holds the computations the blocks wrap and :func:`~singlink_gr.link.direct_link`,
the same chain without GNU Radio; ``singlink_gr.framing`` assembles frames from stream chunks.
singlink itself (torch, TensorFlow) loads when a block is built, not on import.
"""
from .burst_rx import burst_rx, burst_sync
from .burst_tx import burst_source, burst_tx
from .framing import Frame, FrameAssembler, Tag
from .jscc_rx import jscc_rx
from .jscc_tx import jscc_tx
from .ofdm_jscc_rx import ofdm_demod, ofdm_jscc_rx
from .ofdm_jscc_tx import ofdm_jscc_source, ofdm_jscc_tx, ofdm_mod
from .sionna_channel import sionna_channel

__all__ = ["jscc_tx", "sionna_channel", "jscc_rx", "burst_source", "burst_tx", "burst_sync", "burst_rx",
           "ofdm_jscc_source", "ofdm_mod", "ofdm_jscc_tx", "ofdm_demod", "ofdm_jscc_rx", "Frame", "FrameAssembler", "Tag"]
