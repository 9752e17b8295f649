"""Why a payment is invalid or a settlement failed: the x402 reason codes.

The generic names come from the x402 specification; the ``invalid_exact_svm_payload_*`` names
are the SVM scheme's, spelled as the reference implementations spell them so that an x402
client or resource server recognises them. Kassa adds a few for checks the references lack
(exact amount, mint allow-list, fee-payer isolation, address lookup tables, signatures).
"""

from __future__ import annotations

import enum


class Reason(enum.StrEnum):
    """Every ``invalidReason`` / ``errorReason`` this facilitator answers."""

    # The spec's generic reasons.
    INVALID_X402_VERSION = "invalid_x402_version"
    INVALID_SCHEME = "invalid_scheme"
    INVALID_NETWORK = "invalid_network"
    INVALID_PAYLOAD = "invalid_payload"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    UNEXPECTED_VERIFY_ERROR = "unexpected_verify_error"
    UNEXPECTED_SETTLE_ERROR = "unexpected_settle_error"
    # Requirements that do not match what was paid for.
    NETWORK_MISMATCH = "network_mismatch"
    REQUIREMENTS_MISMATCH = "invalid_exact_svm_payload_requirements_mismatch"
    INVALID_REQUIREMENTS = "invalid_payment_requirements"
    # The exact scheme on SVM.
    FEE_PAYER_MISSING = "invalid_exact_svm_payload_missing_fee_payer"
    FEE_PAYER_NOT_MANAGED = "fee_payer_not_managed_by_facilitator"
    FEE_PAYER_MISMATCH = "invalid_exact_svm_payload_fee_payer_mismatch"
    FEE_PAYER_IN_INSTRUCTION = (
        "invalid_exact_svm_payload_transaction_fee_payer_included_in_instruction_accounts"
    )
    FEE_PAYER_TRANSFERRING = "invalid_exact_svm_payload_transaction_fee_payer_transferring_funds"
    DECODE_FAILED = "invalid_exact_svm_payload_transaction_could_not_be_decoded"
    ADDRESS_LOOKUP_TABLES = "invalid_exact_svm_payload_transaction_address_lookup_tables"
    INSTRUCTION_COUNT = "invalid_exact_svm_payload_transaction_instructions_length"
    COMPUTE_LIMIT = "invalid_exact_svm_payload_transaction_instructions_compute_limit_instruction"
    COMPUTE_LIMIT_TOO_HIGH = (
        "invalid_exact_svm_payload_transaction_instructions_compute_limit_instruction_too_high"
    )
    COMPUTE_PRICE = "invalid_exact_svm_payload_transaction_instructions_compute_price_instruction"
    COMPUTE_PRICE_TOO_HIGH = (
        "invalid_exact_svm_payload_transaction_instructions_compute_price_instruction_too_high"
    )
    NO_TRANSFER_INSTRUCTION = "invalid_exact_svm_payload_no_transfer_instruction"
    UNKNOWN_FOURTH_INSTRUCTION = "invalid_exact_svm_payload_unknown_fourth_instruction"
    UNKNOWN_FIFTH_INSTRUCTION = "invalid_exact_svm_payload_unknown_fifth_instruction"
    UNKNOWN_SIXTH_INSTRUCTION = "invalid_exact_svm_payload_unknown_sixth_instruction"
    MEMO_COUNT = "invalid_exact_svm_payload_memo_count"
    MEMO_MISMATCH = "invalid_exact_svm_payload_memo_mismatch"
    MINT_MISMATCH = "invalid_exact_svm_payload_mint_mismatch"
    ASSET_NOT_ALLOWED = "invalid_exact_svm_payload_asset_not_allowed"
    RECIPIENT_MISMATCH = "invalid_exact_svm_payload_recipient_mismatch"
    AMOUNT_INSUFFICIENT = "invalid_exact_svm_payload_amount_insufficient"
    AMOUNT_EXCEEDS = "invalid_exact_svm_payload_amount_exceeds_required"
    SIGNATURE_MISSING = "invalid_exact_svm_payload_transaction_signature_missing"
    SIGNATURE_INVALID = "invalid_exact_svm_payload_transaction_signature_invalid"
    BLOCKHASH_EXPIRED = "invalid_exact_svm_payload_transaction_blockhash_expired"
    SIMULATION_FAILED = "transaction_simulation_failed"
    # Settlement.
    DUPLICATE_SETTLEMENT = "duplicate_settlement"
    MEMO_ALREADY_USED = "invalid_exact_svm_payload_memo_already_used"
    FEE_PAYER_BALANCE_LOW = "fee_payer_balance_below_floor"
    TRANSACTION_FAILED = "transaction_failed"
    SETTLEMENT_PENDING = "settlement_pending"


# Instruction positions 4, 5 and 6 (index 3, 4, 5) each have their own reason.
UNKNOWN_OPTIONAL_INSTRUCTION = (
    Reason.UNKNOWN_FOURTH_INSTRUCTION,
    Reason.UNKNOWN_FIFTH_INSTRUCTION,
    Reason.UNKNOWN_SIXTH_INSTRUCTION,
)


class PaymentInvalid(Exception):
    """A payment that fails a rule: carries the reason code and a sentence for people."""

    def __init__(self, reason: Reason, message: str, payer: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.payer = payer
