"""Separation baselines: BPG/HEVC + LDPC, and the BPG + capacity bound."""
