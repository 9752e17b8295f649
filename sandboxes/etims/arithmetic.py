"""The sums KRA checks on sales, purchases and stock movements, in ``Decimal`` to the cent.

Per line (spec, "Arithmetic"): ``splyAmt = r2(qty x prc)``; ``dcAmt = r2(splyAmt x dcRt / 100)``;
``taxblAmt = splyAmt - dcAmt``; tax-inclusive ``taxAmt = r2(taxblAmt x r / (100 + r))`` with
``totAmt = taxblAmt``, tax-exclusive ``taxAmt = r2(taxblAmt x r / 100)`` with ``totAmt =
taxblAmt + taxAmt``. ``r2`` rounds half-up to two places. Which of the two a line uses is read
from its ``totAmt``, so tenants with exclusive prices pass too. Header: ``taxblAmtX``,
``taxAmtX`` are the sums over the lines of tax type X, ``taxRtX`` the published rate,
``totTaxblAmt``/``totTaxAmt`` the sums over A..E and ``totAmt`` the sum of the lines' totals.
Amounts must match exactly: a client off by a cent is told which field and by how much.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from sandboxes.etims.codes import TAX_TYPES
from sandboxes.etims.fields import Fields, ParameterError

CENT = Decimal("0.01")
HUNDRED = Decimal(100)
ZERO = Decimal(0)


def r2(value: Decimal) -> Decimal:
    """``value`` rounded half-up to cents."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def inclusive_tax(taxable: Decimal, rate: Decimal) -> Decimal:
    """The tax contained in a tax-inclusive amount."""
    return r2(taxable * rate / (HUNDRED + rate))


def exclusive_tax(taxable: Decimal, rate: Decimal) -> Decimal:
    """The tax added on top of a tax-exclusive amount."""
    return r2(taxable * rate / HUNDRED)


@dataclass(frozen=True)
class Line:
    """The amounts of one ``itemList`` entry, as the client sent them."""

    path: str
    tax_type: str
    quantity: Decimal
    price: Decimal
    supply: Decimal
    discount_rate: Decimal | None  # stock movements carry only the discount amount
    discount: Decimal
    taxable: Decimal
    tax: Decimal
    total: Decimal
    discount_field: str = "dcAmt"


def check_line(line: Line, rate: Decimal) -> None:
    """Raise :class:`ParameterError` on the first amount of ``line`` that does not add up."""
    supply = r2(line.quantity * line.price)
    if line.supply != supply:
        raise ParameterError(
            f"{line.path}splyAmt",
            f"must be {supply} (qty {line.quantity} x prc {line.price}), got {line.supply}",
        )
    if line.discount_rate is not None:
        discount = r2(line.supply * line.discount_rate / HUNDRED)
        if line.discount != discount:
            raise ParameterError(
                f"{line.path}{line.discount_field}",
                f"must be {discount} (splyAmt x dcRt {line.discount_rate} / 100), "
                f"got {line.discount}",
            )
    taxable = line.supply - line.discount
    if line.taxable != taxable:
        raise ParameterError(
            f"{line.path}taxblAmt",
            f"must be {taxable} (splyAmt - {line.discount_field}), got {line.taxable}",
        )
    if line.total == line.taxable:
        expected = inclusive_tax(line.taxable, rate)
        if line.tax != expected:
            raise ParameterError(
                f"{line.path}taxAmt",
                f"must be {expected} (taxblAmt x {rate} / (100 + {rate}), tax-inclusive "
                f"type {line.tax_type}), got {line.tax}",
            )
    elif line.total == line.taxable + line.tax:
        expected = exclusive_tax(line.taxable, rate)
        if line.tax != expected:
            raise ParameterError(
                f"{line.path}taxAmt",
                f"must be {expected} (taxblAmt x {rate} / 100, tax-exclusive type "
                f"{line.tax_type}), got {line.tax}",
            )
    else:
        raise ParameterError(
            f"{line.path}totAmt",
            f"must be taxblAmt {line.taxable} (tax-inclusive) or taxblAmt + taxAmt "
            f"{line.taxable + line.tax} (tax-exclusive), got {line.total}",
        )


@dataclass(frozen=True)
class Totals:
    """A transaction's header amounts, checked against its lines."""

    taxable_by_type: dict[str, Decimal]
    rate_by_type: dict[str, Decimal]
    tax_by_type: dict[str, Decimal]
    total_taxable: Decimal
    total_tax: Decimal
    total: Decimal


def read_line(row: Fields, tax_type: str, *, discount_rate_field: bool = True) -> Line:
    """The amounts of an ``itemList`` row (types and places checked, sums not yet)."""
    discount_field = "dcAmt" if discount_rate_field else "totDcAmt"
    return Line(
        path=row.path,
        tax_type=tax_type,
        quantity=row.required_number("qty", 13, 2, minimum=CENT),
        price=row.required_number("prc"),
        supply=row.required_number("splyAmt"),
        discount_rate=(
            row.required_number("dcRt", 5, 2, maximum=HUNDRED) if discount_rate_field else None
        ),
        discount=row.required_number(discount_field),
        taxable=row.required_number("taxblAmt"),
        tax=row.required_number("taxAmt"),
        total=row.required_number("totAmt"),
        discount_field=discount_field,
    )


def check_header_by_type(header: Fields, lines: list[Line], rates: dict[str, Decimal]) -> Totals:
    """Check the fifteen per-type fields and the three totals of a sale or purchase."""
    taxable_by_type: dict[str, Decimal] = {}
    rate_by_type: dict[str, Decimal] = {}
    tax_by_type: dict[str, Decimal] = {}
    for tax_type in TAX_TYPES:
        of_type = [line for line in lines if line.tax_type == tax_type]
        taxable = header.required_number(f"taxblAmt{tax_type}")
        expected_taxable = sum((line.taxable for line in of_type), ZERO)
        if taxable != expected_taxable:
            raise header.fail(
                f"taxblAmt{tax_type}",
                f"must be {expected_taxable} (sum of itemList taxblAmt of type {tax_type}), "
                f"got {taxable}",
            )
        rate = header.required_number(f"taxRt{tax_type}", 7, 2)
        published = rates.get(tax_type, ZERO)
        if rate != published:
            raise header.fail(
                f"taxRt{tax_type}",
                f"must be {published} (the rate of tax type {tax_type} in selectCodeList), "
                f"got {rate}",
            )
        tax = header.required_number(f"taxAmt{tax_type}")
        expected_tax = sum((line.tax for line in of_type), ZERO)
        if tax != expected_tax:
            raise header.fail(
                f"taxAmt{tax_type}",
                f"must be {expected_tax} (sum of itemList taxAmt of type {tax_type}), got {tax}",
            )
        taxable_by_type[tax_type], rate_by_type[tax_type], tax_by_type[tax_type] = (
            taxable,
            rate,
            tax,
        )
    total_taxable, total_tax, total = check_totals(
        header,
        lines,
        sum(taxable_by_type.values(), ZERO),
        sum(tax_by_type.values(), ZERO),
        by_type=True,
    )
    return Totals(taxable_by_type, rate_by_type, tax_by_type, total_taxable, total_tax, total)


def check_totals(
    header: Fields,
    lines: list[Line],
    expected_taxable: Decimal,
    expected_tax: Decimal,
    *,
    by_type: bool,
) -> tuple[Decimal, Decimal, Decimal]:
    """Check ``totTaxblAmt``, ``totTaxAmt`` and ``totAmt``; return them."""
    basis = "taxblAmtA..E" if by_type else "itemList taxblAmt"
    total_taxable = header.required_number("totTaxblAmt")
    if total_taxable != expected_taxable:
        raise header.fail(
            "totTaxblAmt", f"must be {expected_taxable} (sum of {basis}), got {total_taxable}"
        )
    tax_basis = "taxAmtA..E" if by_type else "itemList taxAmt"
    total_tax = header.required_number("totTaxAmt")
    if total_tax != expected_tax:
        raise header.fail(
            "totTaxAmt", f"must be {expected_tax} (sum of {tax_basis}), got {total_tax}"
        )
    total = header.required_number("totAmt")
    expected_total = sum((line.total for line in lines), ZERO)
    if total != expected_total:
        raise header.fail(
            "totAmt", f"must be {expected_total} (sum of itemList totAmt), got {total}"
        )
    return total_taxable, total_tax, total
