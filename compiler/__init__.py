"""optgen.compiler: spec text -> checked IR -> SymPy -> kernel plan -> generated source.

Stages, one module each: :mod:`.parse`, :mod:`.check`, :mod:`.lower`, :mod:`.plan`,
:mod:`.render`; :mod:`.pipeline` runs them in order and :mod:`.build` writes ``generated/``.
"""

from .errors import SpecError

__all__ = ["SpecError"]
