"""The analyzer's commands (``ixmeter analyze``, ``report``, ``faults``, ``verify``): thin
argument parsing over the analyzer; nothing in the analyzer imports them."""
