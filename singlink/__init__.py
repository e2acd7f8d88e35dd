"""singlink: link-level simulation of semantic image communication."""
