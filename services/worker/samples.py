"""Sample invoices for `runledger demo`: small, varied, and all made up."""
from __future__ import annotations

import copy

INVOICES: list[dict] = [
    {
        "invoice_number": "INV-2024-0012", "date": "2024-03-05", "currency": "EUR",
        "vendor": {"name": "Papeterie Lumière SARL", "vat_id": "FR40303265045"},
        "customer": {"name": "Acme Robotics GmbH", "country": "DE"},
        "line_items": [
            {"description": "A4 paper, 80 g, box of 5 reams", "quantity": 4, "unit_price": 23.5, "amount": 94.0},
            {"description": "Ballpoint pens, blue (pack of 50)", "quantity": 2, "unit_price": 11.9, "amount": 23.8},
        ],
        "subtotal": 117.8, "tax": 23.56, "total": 141.36, "paid": False,
    },
    {
        "invoice_number": "8841", "date": "2024-04-18", "currency": "USD",
        "vendor": {"name": "Bluebird Cloud Hosting Inc.", "vat_id": None},
        "customer": {"name": "Northwind Traders", "country": "US"},
        "line_items": [
            {"description": "Managed Kubernetes, April", "quantity": 1, "unit_price": 1450.0, "amount": 1450.0},
            {"description": "Object storage (TB-month)", "quantity": 12, "unit_price": 21.0, "amount": 252.0},
            {"description": "Support plan: business", "quantity": 1, "unit_price": 300.0, "amount": 300.0},
        ],
        "subtotal": 2002.0, "tax": 0.0, "total": 2002.0, "paid": True,
    },
    {
        "invoice_number": "F-00317", "date": "2024-05-02", "currency": "EUR",
        "vendor": {"name": "Café Sólo, S.L.", "vat_id": "ESB12345678"},
        "customer": {"name": "Oficina Central Madrid", "country": "ES"},
        "line_items": [
            {"description": "Coffee beans, 1 kg, espresso roast", "quantity": 6, "unit_price": 18.75, "amount": 112.5},
        ],
        "subtotal": 112.5, "tax": 11.25, "total": 123.75, "paid": False,
    },
    {
        "invoice_number": "2024/INV/551", "date": "2024-06-30", "currency": "GBP",
        "vendor": {"name": "Harbour & Finch Legal LLP", "vat_id": "GB123456789"},
        "customer": {"name": "Oakridge Ventures Ltd", "country": "GB"},
        "line_items": [
            {"description": "Contract review, share purchase agreement", "quantity": 6.5,
             "unit_price": 320.0, "amount": 2080.0},
            {"description": "Companies House filing fee", "quantity": 1, "unit_price": 50.0, "amount": 50.0},
        ],
        "subtotal": 2130.0, "tax": 426.0, "total": 2556.0, "paid": False,
        "notes": "Payment due within 30 days of the invoice date by bank transfer to the account shown overleaf.",
    },
    {
        "invoice_number": "SO-10058", "date": "2024-07-11", "currency": "USD",
        "vendor": {"name": "Greenleaf Office Plants", "vat_id": None},
        "customer": {"name": "Contoso Ltd", "country": "US"},
        "line_items": [
            {"description": "Monstera deliciosa, large", "quantity": 3, "unit_price": 89.0, "amount": 267.0},
            {"description": "Self-watering planter", "quantity": 3, "unit_price": 34.5, "amount": 103.5},
            {"description": "Monthly plant care visit", "quantity": 1, "unit_price": 120.0, "amount": 120.0},
            {"description": "Delivery", "quantity": 1, "unit_price": 25.0, "amount": 25.0},
        ],
        "subtotal": 515.5, "tax": 41.24, "total": 556.74, "paid": True,
    },
    {
        "invoice_number": "RE-2024-1187", "date": "2024-08-09", "currency": "EUR",
        "vendor": {"name": "Müller Werkzeugbau GmbH", "vat_id": "DE811569869"},
        "customer": {"name": "Acme Robotics GmbH", "country": "DE"},
        "line_items": [
            {"description": "CNC-milled aluminium bracket", "quantity": 40, "unit_price": 12.8, "amount": 512.0},
            {"description": "Anodising, black", "quantity": 40, "unit_price": 2.2, "amount": 88.0},
        ],
        "subtotal": 600.0, "tax": 114.0, "total": 714.0, "paid": False,
    },
    {
        "invoice_number": "00045", "date": "2024-09-23", "currency": "CAD",
        "vendor": {"name": "Maple Leaf Translation Services", "vat_id": None},
        "customer": {"name": "Northwind Traders", "country": "CA"},
        "line_items": [
            {"description": "Translation EN to FR, 4,200 words", "quantity": 4200, "unit_price": 0.18,
             "amount": 756.0},
        ],
        "subtotal": 756.0, "tax": 98.28, "total": 854.28, "paid": True,
    },
    {
        "invoice_number": "INV-77-B", "date": "2024-10-01", "currency": "USD",
        "vendor": {"name": "Sunrise Catering Co.", "vat_id": None},
        "customer": {"name": "Fabrikam Inc.", "country": "US"},
        "line_items": [
            {"description": "Team lunch buffet, 25 people", "quantity": 25, "unit_price": 22.0, "amount": 550.0},
            {"description": "Vegan option surcharge", "quantity": 6, "unit_price": 3.0, "amount": 18.0},
            {"description": "Service staff, 3 hours", "quantity": 3, "unit_price": 45.0, "amount": 135.0},
        ],
        "subtotal": 703.0, "tax": 56.24, "total": 759.24, "paid": False,
    },
]


def sample_invoices(count: int) -> list[dict]:
    """`count` distinct invoices: the samples above, then numbered variants of them."""
    invoices = []
    for i in range(count):
        invoice = copy.deepcopy(INVOICES[i % len(INVOICES)])
        if i >= len(INVOICES):
            invoice["invoice_number"] += f"-{i // len(INVOICES)}"
        invoices.append(invoice)
    return invoices


def sample_documents(count: int) -> list[dict]:
    """The invoices as experiment documents (one JSON handle each)."""
    return [{"handle_inputs": {"invoice": {"type": "json", "data": invoice}}} for invoice in sample_invoices(count)]
