"""A local KRA eTIMS for offline runs and tests: the OSCU API and a VSCU profile.

``python -m sandboxes.etims serve`` answers the eTIMS calls the fiscal service makes, on
``ETIMS_SANDBOX_PORT`` (8103), so that ``KRA_BASE_URL=http://127.0.0.1:8103`` (which
``kassa run`` sets) stands in for ``https://etims-api-sbx.kra.go.ke/etims-api``. No public KRA
simulator exists; this one follows ``shared/specs/etims.md``: KRA's envelope (``resultCd``,
``resultMsg``, ``resultDt``, ``data``; HTTP 200 even for errors), the ``tin``/``bhfId``/
``cmcKey`` headers, device initialisation, code lists and item classes with ``lastReqDt``,
items, sales checked field by field and to the cent, receipt counters and signatures,
``selectInvoiceDetails``, purchases and stock. The same operations answer on the VSCU paths
(``/trnsSales/saveSales``, ...), identified by ``tin`` and ``bhfId`` in the body as a
taxpayer's own VSCU server would be.

Faults on demand (``POST /sandbox/faults``): added latency, 894, 990 and 999 replies, and the
ambiguous case, a sale stored and counted whose reply arrives too late or never.

State lives in memory, in one process: a restart forgets sales, items and counters. The keys
of seeded and registered serials are derived from them, so a client that kept its cmcKey
across a restart is still recognised.
"""

from __future__ import annotations
