"""JSON-RPC errors as a Solana node returns them, and transaction errors in their two forms.

Codes and messages follow JSON-RPC 2.0 (-32700 parse error, -32600 invalid request, -32601
method not found, -32602 invalid params, -32603 internal error) and Agave's
``rpc-client-api/src/custom_error.rs`` for the server errors (-32002 preflight failure with the
simulation result as ``data``, -32003 signature verification failure, -32015 unsupported
transaction version, -32016 minimum context slot not reached).

A transaction error travels as JSON (``"BlockhashNotFound"``, ``{"InstructionError": [2,
{"Custom": 1}]}``), which solders serializes for us, and as text in a preflight failure's
message ("Transaction simulation failed: Blockhash not found"): the texts are the Display
strings of ``TransactionError`` and ``InstructionError`` in the Solana SDK.
"""

from __future__ import annotations

from typing import Any

import orjson
from solders.rpc.responses import RpcSimulateTransactionResult
from solders.transaction_status import TransactionErrorType

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SEND_TRANSACTION_PREFLIGHT_FAILURE = -32002
TRANSACTION_SIGNATURE_VERIFICATION_FAILURE = -32003
UNSUPPORTED_TRANSACTION_VERSION = -32015
MIN_CONTEXT_SLOT_NOT_REACHED = -32016


class RpcError(Exception):
    """An error reply: ``{"code", "message", "data"?}``."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            body["data"] = self.data
        return body


def parse_error() -> RpcError:
    return RpcError(PARSE_ERROR, "Parse error")


def invalid_request() -> RpcError:
    return RpcError(INVALID_REQUEST, "Invalid request")


def method_not_found() -> RpcError:
    return RpcError(METHOD_NOT_FOUND, "Method not found")


def invalid_params(message: str) -> RpcError:
    """-32602 with the node's own wording (callers pass e.g. "Invalid param: ...")."""
    return RpcError(INVALID_PARAMS, message)


def internal_error() -> RpcError:
    return RpcError(INTERNAL_ERROR, "Internal error")


def signature_verification_failure() -> RpcError:
    return RpcError(
        TRANSACTION_SIGNATURE_VERIFICATION_FAILURE, "Transaction signature verification failure"
    )


def min_context_slot_not_reached(context_slot: int) -> RpcError:
    return RpcError(
        MIN_CONTEXT_SLOT_NOT_REACHED,
        "Minimum context slot has not been reached",
        {"contextSlot": context_slot},
    )


def unsupported_transaction_version(version: int) -> RpcError:
    return RpcError(
        UNSUPPORTED_TRANSACTION_VERSION,
        f"Transaction version ({version}) is not supported by the requesting client. Please try "
        "the request again with the following configuration parameter: "
        f'"maxSupportedTransactionVersion": {version}',
    )


def transaction_error_json(error: TransactionErrorType | None) -> Any:
    """The RPC JSON form of a transaction error (``None`` stays ``None``)."""
    if error is None:
        return None
    return orjson.loads(RpcSimulateTransactionResult(err=error).to_json())["err"]


_TRANSACTION_ERRORS = {
    "AccountInUse": "Account in use",
    "AccountLoadedTwice": "Account loaded twice",
    "AccountNotFound": "Attempt to debit an account but found no record of a prior credit.",
    "ProgramAccountNotFound": "Attempt to load a program that does not exist",
    "InsufficientFundsForFee": "Insufficient funds for fee",
    "InvalidAccountForFee": "This account may not be used to pay transaction fees",
    "AlreadyProcessed": "This transaction has already been processed",
    "BlockhashNotFound": "Blockhash not found",
    "CallChainTooDeep": "Loader call chain is too deep",
    "MissingSignatureForFee": "Transaction requires a fee but has no signature present",
    "InvalidAccountIndex": "Transaction contains an invalid account reference",
    "SignatureFailure": "Transaction did not pass signature verification",
    "InvalidProgramForExecution": "This program may not be used for executing instructions",
    "SanitizeFailure": "Transaction failed to sanitize accounts offsets correctly",
    "UnsupportedVersion": "Transaction version is unsupported",
    "InvalidWritableAccount": "Transaction loads a writable account that cannot be written",
    "TooManyAccountLocks": "Transaction locked too many accounts",
    "InvalidRentPayingAccount": (
        "Transaction leaves an account with a lower balance than rent-exempt minimum"
    ),
    "MaxLoadedAccountsDataSizeExceeded": "Transaction exceeded max loaded accounts data size cap",
    "UnbalancedTransaction": "Sum of account balances before and after transaction do not match",
}

_INSTRUCTION_ERRORS = {
    "GenericError": "generic instruction error",
    "InvalidArgument": "invalid program argument",
    "InvalidInstructionData": "invalid instruction data",
    "InvalidAccountData": "invalid account data for instruction",
    "AccountDataTooSmall": "account data too small for instruction",
    "InsufficientFunds": "insufficient funds for instruction",
    "IncorrectProgramId": "incorrect program id for instruction",
    "MissingRequiredSignature": "missing required signature for instruction",
    "AccountAlreadyInitialized": "instruction requires an uninitialized account",
    "UninitializedAccount": "instruction requires an initialized account",
    "UnbalancedInstruction": "sum of account balances before and after instruction do not match",
    "ExternalAccountLamportSpend": (
        "instruction spent from the balance of an account it does not own"
    ),
    "ExternalAccountDataModified": "instruction modified data of an account it does not own",
    "ReadonlyLamportChange": "instruction changed the balance of a read-only account",
    "ReadonlyDataModified": "instruction modified data of a read-only account",
    "NotEnoughAccountKeys": "insufficient account keys for instruction",
    "AccountNotExecutable": "instruction expected an executable account",
    "UnsupportedProgramId": "Unsupported program id",
    "CallDepth": "Cross-program invocation call depth too deep",
    "MissingAccount": "An account required by the instruction is missing",
    "InvalidSeeds": "Provided seeds do not result in a valid address",
    "ComputationalBudgetExceeded": "Computational budget exceeded",
    "PrivilegeEscalation": "Cross-program invocation with unauthorized signer or writable account",
    "ProgramFailedToComplete": "Program failed to complete",
    "ProgramFailedToCompile": "Program failed to compile",
    "Immutable": "Account is immutable",
    "IncorrectAuthority": "Incorrect authority provided",
    "BorshIoError": "Failed to serialize or deserialize account data",
    "AccountNotRentExempt": "An account does not have enough lamports to be rent-exempt",
    "InvalidAccountOwner": "Invalid account owner",
    "ArithmeticOverflow": "Program arithmetic overflowed",
    "IllegalOwner": "Provided owner is not allowed",
}


def _instruction_error_message(error: Any) -> str:
    if isinstance(error, dict) and "Custom" in error:
        return f"custom program error: {int(error['Custom']):#x}"
    if isinstance(error, dict) and error:
        name = str(next(iter(error)))
        return _INSTRUCTION_ERRORS.get(name, name)
    return _INSTRUCTION_ERRORS.get(str(error), str(error))


def transaction_error_message(error: TransactionErrorType) -> str:
    """The error's text, as in "Transaction simulation failed: <text>"."""
    as_json = transaction_error_json(error)
    if isinstance(as_json, str):
        return _TRANSACTION_ERRORS.get(as_json, str(as_json))
    name, detail = next(iter(as_json.items()))
    if name == "InstructionError":
        index, instruction_error = detail
        return (
            f"Error processing Instruction {index}: {_instruction_error_message(instruction_error)}"
        )
    if name == "InsufficientFundsForRent":
        return (
            f"Transaction results in an account ({detail['account_index']}) with insufficient "
            "funds for rent"
        )
    if name == "DuplicateInstruction":
        return f"Transaction contains a duplicate instruction ({detail}) that is not allowed"
    return str(name)
