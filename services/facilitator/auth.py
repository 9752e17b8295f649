"""Who may call what on the facilitator (the gateway has already checked the API key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from shared.identity import Caller, require_any_scope

# Verifying commits to nothing, so a key that may settle may verify too.
Verifier = Annotated[Caller, Depends(require_any_scope("facilitator:verify", "facilitator:settle"))]
Settler = Annotated[Caller, Depends(require_any_scope("facilitator:settle"))]
Reader = Annotated[
    Caller,
    Depends(
        require_any_scope("read", "facilitator:read", "facilitator:verify", "facilitator:settle")
    ),
]
