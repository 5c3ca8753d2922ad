"""The catalogue: one ``.opt`` spec file per optimizer, built into ``optgen.generated``."""
