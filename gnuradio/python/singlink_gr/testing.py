"""Helpers for the qa_*.py tests and tests/test_gnuradio.py: tagged vector sources, tag readout,
and running a top block with a time limit."""
from __future__ import annotations

import threading

import numpy as np
import pmt
from gnuradio import blocks, gr

from .common import from_pmt, to_pmt


def make_tag(offset, key, value):
    """A gr.tag_t at absolute ``offset``; ``value`` a Python value or a pmt."""
    if not isinstance(value, pmt.pmt_python.pmt_base):
        value = to_pmt(value)
    return gr.tag_utils.python_to_tag((int(offset), pmt.intern(key), value, pmt.intern("qa")))


def frame_tags(offset, length, snr_db=None, image_id=None, frame=None, length_tag_key="packet_len", **extra):
    """The tags jscc_tx puts on a frame start (those given), as (offset, key, value)."""
    tags = [(offset, length_tag_key, length)]
    for key, value in (("snr_db", snr_db), ("image_id", image_id), ("frame", frame), *extra.items()):
        if value is not None:
            tags.append((offset, key, value))
    return tags


def tagged_source(samples, tags):
    """A vector_source_c of ``samples`` with ``tags`` [(offset, key, value)].

    To make frames cross work() calls, cap the *consuming* block's items per call with its
    ``set_max_noutput_items(n)``: GNU Radio 3.10's vector_source with tags emits its whole vector
    in one call and stalls forever when its own max_noutput_items is smaller."""
    return blocks.vector_source_c(np.asarray(samples, dtype=np.complex64).tolist(), False, 1,
                                  [make_tag(*t) for t in tags])


def sink_tags(sink, key=None):
    """Tags a vector sink received, as [(offset, key, python value)] sorted by offset."""
    out = [(int(t.offset), pmt.symbol_to_string(t.key), from_pmt(t.value)) for t in sink.tags()]
    return sorted((t for t in out if key is None or t[1] == key), key=lambda t: (t[0], t[1]))


def run_flowgraph(tb, timeout=60.0):
    """tb.start() and wait at most ``timeout`` seconds; a flowgraph still running then is stopped
    and TimeoutError raised (so a hang fails a test instead of blocking it)."""
    tb.start()
    done = threading.Event()

    def wait():
        tb.wait()
        done.set()

    threading.Thread(target=wait, daemon=True).start()
    if not done.wait(timeout):
        tb.stop()
        done.wait(10)
        raise TimeoutError(f"flowgraph did not finish within {timeout} s")


def messages(debug_block):
    """The messages a blocks.message_debug stored on its 'store' port."""
    return [debug_block.get_message(i) for i in range(debug_block.num_messages())]


def pdu_image(msg):
    """(uint8 image (H, W, 3), metadata dict) of a jscc_rx PDU."""
    from .common import parse_image_message

    return parse_image_message(msg)


__all__ = ["make_tag", "frame_tags", "tagged_source", "sink_tags", "run_flowgraph", "messages", "pdu_image"]
