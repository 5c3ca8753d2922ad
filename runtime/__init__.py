"""optgen.runtime: load generated modules and step arrays with them."""
