"""The demo loyalty database: a deterministic, realistic CRM/loyalty data set in SQLite or PostgreSQL.

``generate_demo_database(url, customers=..., seed=...)`` creates the tables of the bundled
catalog (builtin_models.yaml, via ``model_table``) and fills them. The same
(customers, seed) gives the same rows on SQLite and on PostgreSQL, byte for byte.

Sizes scale with ``customers``: about 10 transactions per customer with 1-4 lines each,
2 vouchers, 1 redemption, 1.5 publications, one points-ledger entry per paid or returned
transaction (plus sign-up bonuses, loyalty redemptions, rollbacks and expirations),
0.3 points expirations; stores = max(5, customers // 200) up to 1000,
campaigns = 10 + customers // 10000, rewards = 50.

Values are generated column-wise with numpy, customer chunk by customer chunk (memory stays
bounded), and loaded with executemany (SQLite, one transaction, journal off) or COPY
(PostgreSQL, psycopg 3). Indexes on the event-date/updated-at columns and on the
customer/transaction keys are created after the load.

Consistency an analyst can check with SQL (all hold exactly):

* customers.orders_total_count = count(*) of the customer's transactions (every status);
  orders_total_amount = sum(amount) of them (returns are negative, so it may be negative);
  orders_average_amount = total / count rounded half away from zero to 2 places
  (NULL without transactions); orders_last_order_amount/_date = amount/created_at of the
  customer's latest transaction (created_at is unique per customer).
* customers.redemptions_total_redeemed = count(*) of the customer's redemptions;
  _succeeded = result 'SUCCESS'; _failed = result 'FAILURE';
  _rollback_succeeded = status 'ROLLED_BACK';
  _rollback_failed = redemptions whose metadata has "rollback": "failed" (status stays SUCCEEDED);
  _rolled_back = rollback attempts = _rollback_succeeded + _rollback_failed.
* customers.loyalty_points = sum(points) of the customer's points_ledger rows (0 without);
  points_ledger.balance_after = running sum per customer ordered by (created_at, id), never
  negative: returns, redemptions and expirations take at most the balance of the moment.
  transactions.points_earned = floor(amount) for PAID/FULFILLED, 0 for CANCELED, and for
  RETURNED the (non-positive) points its ORDER_RETURN ledger row took back.
* customers.loyalty_referred_customers = distinct customers with a status 'SUCCEEDED'
  redemption of a referral code (vouchers.is_referral_code) that this customer owns.
* vouchers.redemption_count = redemptions of that code with status 'SUCCEEDED';
  a LOYALTY_CARD's loyalty_balance = its owner's loyalty_points.
* transactions.amount = sum(lines.amount) - discount_amount; lines.amount = quantity * unit_price;
  items_count = sum(abs(quantity)); returns (status RETURNED) have negative quantities.
* redemptions with an order_id happened at that transaction's created_at, for its amount.

Timestamps lie in 2024-01-01 .. 2026-10-31 23:59:59 UTC, whole seconds, updated_at >= created_at;
only forward-looking dates (voucher/campaign expiration_date, an ACTIVE points
expiration's expires_at) may lie after the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sqlite3
import sys
import time
import unicodedata
from collections.abc import Callable, Sequence

import numpy as np
import sqlalchemy as sa
from sqlalchemy.schema import CreateIndex

from export_pipelines.catalog.models import load_builtin_catalog
from export_pipelines.catalog.sql_types import model_table
from export_pipelines.database_urls import normalize_url

START = int(dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp())
END = int(dt.datetime(2026, 10, 31, 23, 59, 59, tzinfo=dt.UTC).timestamp())
MINUTE, HOUR, DAY = 60, 3600, 86400


def demo_data_end() -> dt.datetime:
    """Just after the newest generated timestamp: the demo's "now" when it picks incremental windows."""
    return dt.datetime.fromtimestamp(END + 1, dt.UTC)


# Activity is generated up to here, leaving room to make a customer's order times distinct.
ACTIVITY_END = END - 2 * HOUR
CHUNK_CUSTOMERS = 10_000
BIG_TABLES = (
    "customers",
    "transactions",
    "transaction_lines",
    "vouchers",
    "redemptions",
    "publications",
    "points_ledger",
    "points_expirations",
)
INDEXED_KEYS = ("customer_id", "transaction_id", "code", "voucher_code")

# ---------------------------------------------------------------------------------------
# Value pools
# ---------------------------------------------------------------------------------------

COUNTRIES = ["DE", "AT", "HU", "FR", "GB", "US", "AU"]  # index 7 = no country (NULL)
COUNTRY_WEIGHTS = [0.30, 0.09, 0.09, 0.12, 0.13, 0.12, 0.07, 0.08]
NO_COUNTRY = len(COUNTRIES)
CURRENCIES = ["EUR", "EUR", "HUF", "EUR", "GBP", "USD", "AUD", "EUR"]
ZONES = ["EU-Central", "EU-Central", "EU-Central", "EU-West", "UK", "NA", "APAC"]
PHONE_PREFIXES = ["+49", "+43", "+36", "+33", "+44", "+1", "+61"]
NUMBER_FIRST = [False, False, False, True, True, True, True]  # "12 High Street" vs "Hauptstraße 12"
# (city, state, postal prefix, random postal digits)
CITIES = [
    [("Berlin", "Berlin", "10", 3), ("München", "Bayern", "80", 3), ("Hamburg", "Hamburg", "20", 3),
     ("Köln", "Nordrhein-Westfalen", "50", 3), ("Frankfurt am Main", "Hessen", "60", 3)],
    [("Wien", "Wien", "1", 3), ("Graz", "Steiermark", "80", 2), ("Linz", "Oberösterreich", "40", 2),
     ("Salzburg", "Salzburg", "50", 2)],
    [("Budapest", "Budapest", "1", 3), ("Debrecen", "Hajdú-Bihar", "40", 2),
     ("Szeged", "Csongrád-Csanád", "67", 2), ("Pécs", "Baranya", "76", 2)],
    [("Paris", "Île-de-France", "750", 2), ("Lyon", "Auvergne-Rhône-Alpes", "690", 2),
     ("Marseille", "Provence-Alpes-Côte d'Azur", "130", 2), ("Toulouse", "Occitanie", "310", 2)],
    [("London", "Greater London", "SW1A 1AA", 0), ("Manchester", "Greater Manchester", "M1 1AE", 0),
     ("Edinburgh", None, "EH1 1YZ", 0), ("Bristol", "Bristol", "BS1 4DJ", 0)],
    [("New York", "NY", "100", 2), ("San Francisco", "CA", "941", 2), ("Chicago", "IL", "606", 2),
     ("Austin", "TX", "787", 2), ("Seattle", "WA", "981", 2)],
    [("Sydney", "NSW", "20", 2), ("Melbourne", "VIC", "30", 2), ("Brisbane", "QLD", "40", 2),
     ("Perth", "WA", "60", 2)],
]
STREETS = [
    ["Hauptstraße", "Bahnhofstraße", "Schillerstraße", "Goethestraße", "Lindenallee"],
    ["Mariahilfer Straße", "Landstraßer Hauptstraße", "Herrengasse", "Kärntner Straße"],
    ["Andrássy út", "Váci utca", "Rákóczi út", "Király utca"],
    ["rue de la Paix", "avenue des Champs-Élysées", "boulevard Saint-Michel", "rue Mouffetard"],
    ["High Street", "Station Road", "Church Lane", "Victoria Road"],
    ["Main Street", "Broadway", "Market Street", "Elm Street"],
    ["George Street", "Collins Street", "Queen Street", "Hay Street"],
]
FEMALE = ["Anna", "Maria", "Zoë", "Sophie", "Emma", "Léa", "Chloé", "Ágnes", "Katalin", "Olivia",
          "Charlotte", "Mia", "Hannah", "Eszter", "Isabella", "Amélie", "Siobhán", "Zsófia", "Grace", "Ingrid"]
MALE = ["Lukas", "Łukasz", "Søren", "Jonas", "Maximilian", "Paul", "Lucas", "Hugo", "Gábor", "Bence",
        "Oliver", "James", "Jack", "Noah", "Liam", "William", "François", "Jürgen", "Björn", "José"]
LAST = ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Gruber", "Huber", "Nagy", "Kovács", "Tóth",
        "Szabó", "Martin", "Bernard", "Dubois", "Lefèvre", "Smith", "Jones", "Williams", "Brown", "O'Brien",
        "Johnson", "García", "Nguyen", "Wilson", "Taylor", "Østergaard", "Wójcik", "Kowalski", "Jensen",
        "D'Angelo"]
CJK_NAMES = [("李雷", "li.lei"), ("韩梅梅", "han.meimei"), ("王芳", "wang.fang"), ("张伟", "zhang.wei"),
             ("陈静", "chen.jing")]
EMAIL_DOMAINS = ["example.com", "example.org", "example.net", "mail.example.de", "example.co.uk"]
GENDERS = ["female", "male", "other", None]
CUSTOMER_DESCRIPTIONS = [
    'Prefers contact by "email", not phone\nVIP since 2019',
    "Moved from Berlin, Germany",
    'Allergic to nuts; "no samples"',
    "Returns often, check receipts",
    "Ügyfél, törzsvásárló",
    "Wholesale buyer",
]
ADDRESS_LINE_2 = ["Apt 4B", "c/o Müller, 2nd floor", 'Building "C"\nEntrance 3', "Flat 12, Block A",
                  "Hinterhaus", "Suite 300"]
TIERS = ["bronze", "silver", "gold", "platinum"]
# (sku, product name, unit price in cents)
PRODUCTS = [
    ("SKU-1001", "Coffee beans, 1 kg", 1230), ("SKU-1002", 'Mug "Classic"', 990),
    ("SKU-1003", "Espresso cups (set of 2)", 1500), ("SKU-1004", "Crème brûlée kit", 2450),
    ("SKU-1005", "Green tea", 500), ("SKU-1006", "Chocolate bar", 250), ("SKU-1007", "Croissant", 180),
    ("SKU-1008", "Sourdough bread", 420), ("SKU-1009", "Olive oil, extra virgin", 1290),
    ("SKU-1010", "T-shirt, size M", 1990), ("SKU-1011", 'Tote bag "Loyal"', 1000),
    ("SKU-1012", "Gift wrap", 300), ("SKU-1013", "Headphones", 7990), ("SKU-1014", "Phone case", 1490),
    ("SKU-1015", "USB-C cable, 2 m", 1120), ("SKU-1016", "Notebook A5", 650), ("SKU-1017", "Pen set", 870),
    ("SKU-1018", "Scented candle", 1840), ("SKU-1019", "Houseplant", 2200), ("SKU-1020", "Sneakers", 8950),
    ("SKU-1021", "Rain jacket", 12900), ("SKU-1022", "Wool scarf", 3500), ("SKU-1023", "Sunglasses", 4999),
    ("SKU-1024", "麻婆豆腐 sauce", 399), ("SKU-1025", "Pálinka, 0.5 l", 2790), ("SKU-1026", "Smørrebrød box", 1350),
    ("SKU-1027", "Board game", 3990), ("SKU-1028", "Puzzle 1000 pcs", 1800), ("SKU-1029", "Yoga mat", 2900),
    ("SKU-1030", "Water bottle", 1610),
]
PRODUCT_WEIGHTS = np.array([30, 12, 5, 3, 20, 30, 40, 25, 8, 6, 5, 10, 2, 4, 6, 7, 5, 4, 3, 2, 1, 2, 2, 6, 2,
                            3, 2, 2, 2, 5], dtype=float)
TX_STATUSES = ["PAID", "FULFILLED", "CANCELED", "RETURNED"]
PAID, FULFILLED, CANCELED, RETURNED = range(4)
TX_CHANNELS = ["STORE", "WEB", "APP"]
VOUCHER_TYPES = ["DISCOUNT_VOUCHER", "GIFT_VOUCHER", "LOYALTY_CARD"]
DISCOUNT, GIFT, LOYALTY = range(3)
CARD, PERSONAL, REFERRAL, GENERIC = range(4)
DISCOUNT_TYPES = ["AMOUNT", "PERCENT", "UNIT", "FIXED"]
AMOUNT_VALUES = [500, 1000, 1230, 1550, 2000, 2500]
PERCENT_VALUES = [1000, 1500, 2000, 2500, 5000]
GIFT_VALUES = [2500, 5000, 10000, 15000, 20000]
VOUCHER_CATEGORIES = ["postman", "newsletter", "in-store", "online", "vip", "", None]
UNIT_EFFECTS = ["ADD_MISSING_ITEMS", "ADD_NEW_ITEMS", "ADD_MANY_ITEMS"]
ADDITIONAL_INFO = ['Valid in all stores, except "outlets"', "Printed on the receipt\nshow at checkout",
                   "One per customer", "Gültig bis auf Widerruf", "Combinable with other offers, max 2"]
REDEMPTION_STATUSES = ["SUCCEEDED", "FAILED", "ROLLED_BACK"]
FAILURES = [
    ("voucher_expired", "Voucher expired"),
    ("quantity_exceeded", 'Quantity exceeded, voucher already "used"'),
    ("customer_rules_violated", 'Customer does not match the segment rules:\n"VIP customers, DE only"'),
    ("order_rules_violated", "Order amount below the minimum, 50.00 EUR"),
    ("not_enough_points", "Not enough points on the loyalty card"),
]
NOT_ENOUGH_POINTS = 4
PROMOTION_TIERS = ["promo_tier_spring", "promo_tier_summer", "promo_tier_bf", "promo_tier_xmas"]
PUBLICATION_CHANNELS = ["API", "WEBSITE", "CLI", "AUTOMATION", "EMAIL"]
LEDGER_REASONS = ["SIGNUP_BONUS", "ORDER", "ORDER_RETURN", "REDEMPTION", "REDEMPTION_ROLLBACK", "POINTS_EXPIRATION"]
BONUS, ORDER, ORDER_RETURN, REDEEM, ROLLBACK, EXPIRE, SCHEDULE = range(7)  # SCHEDULE: a future expiration

# (name, campaign_type, status, metadata) of the first campaigns; more are numbered.
FIXED_CAMPAIGNS = [
    ("Loyalty Club", "LOYALTY_PROGRAM", "ACTIVE", {"program": "points", "earn_rate": 1}),
    ("Welcome 10% off", "DISCOUNT_COUPONS", "ACTIVE", {"segment": "new customers"}),
    ("Gift Cards", "GIFT_VOUCHERS", "ACTIVE", None),
    ("Refer a Friend", "REFERRAL_PROGRAM", "ACTIVE", {"reward": "10.00 EUR"}),
    ("Summer Sale, 2024", "DISCOUNT_COUPONS", "EXPIRED", {"season": "summer", "year": 2024}),
    ('Black Friday "Mega" Deals', "DISCOUNT_COUPONS", "EXPIRED", None),
    ("Newsletter Bonus", "DISCOUNT_COUPONS", "ACTIVE", {"channel": "email"}),
    ("Xmas Gift Cards", "GIFT_VOUCHERS", "INACTIVE", {"season": "winter"}),
    ("Spring Promo", "PROMOTION", "ACTIVE", None),
    ("Frühling — Ünique Spring", "DISCOUNT_COUPONS", "DRAFT", {"note": "Zoë's idea,\nsee wiki"}),
]
LOYALTY_CAMPAIGN_ID, REFERRAL_CAMPAIGN_ID = 1, 4
REWARD_NAMES = ["Free coffee", "Tote bag", "10% off next order", "Cinema ticket", "Gift card 25.00",
                'Mug "Classic"', "Free delivery", "Dessert, any size", "Double points day", "Spa voucher"]
REWARD_TYPES = ["MATERIAL", "COIN", "CAMPAIGN"]


def _json_pool(objects: Sequence[object | None]) -> list[str | None]:
    return [None if obj is None else json.dumps(obj) for obj in objects]


TX_METADATA = _json_pool([
    None, {"source": "pos", "terminal": 3}, {"source": "web"}, {"source": "app", "app_version": "4.2.0"},
    {"gift_wrap": True, "note": 'Happy birthday, "Mum"!\nLove, Zoë'}, {"coupon_codes": ["WELCOME10", "SUMMER5"]},
    {"cashier": "Łukasz"}, {},
])
TX_METADATA_WEIGHTS = [0.55, 0.15, 0.1, 0.08, 0.02, 0.04, 0.04, 0.02]
VOUCHER_METADATA = _json_pool([None, {"batch": "2024-Q1"}, {"printed": True}, {"source": "newsletter", "lang": "de"},
                               {"note": 'Reissued, "lost card"'}])
VOUCHER_METADATA_WEIGHTS = [0.6, 0.15, 0.1, 0.1, 0.05]
REDEMPTION_METADATA = _json_pool([None, {"channel": "pos"}, {"source": "checkout", "attempt": 1},
                                  {"source": "checkout", "attempt": 2}])
REDEMPTION_METADATA_WEIGHTS = [0.7, 0.15, 0.1, 0.05]
ROLLBACK_FAILED_METADATA = json.dumps({"rollback": "failed", "rollback_reason": "order already fulfilled"})
ROLLED_BACK_METADATA = json.dumps({"rollback": "succeeded", "rollback_reason": "customer request"})
PUBLICATION_METADATA = _json_pool([None, {"source": "newsletter", "batch": "2024-05"}, {"source": "signup"},
                                   {"giveaway": "Xmas, 2025"}])
PUBLICATION_METADATA_WEIGHTS = [0.8, 0.1, 0.07, 0.03]


# ---------------------------------------------------------------------------------------
# Column helpers: numpy arrays -> Python lists ready for executemany / COPY
# ---------------------------------------------------------------------------------------


def _nullable(values: np.ndarray, null: np.ndarray | None = None) -> list:
    out = np.asarray(values)
    out = out.astype(object) if out.dtype != object else out.copy()
    if null is not None:
        out[null] = None
    return out.tolist()


def _money(cents: np.ndarray, null: np.ndarray | None = None) -> list:
    """Cents as floats with two decimals (1230 -> 12.3); NUMERIC(18, 2) stores them exactly."""
    return _nullable(np.asarray(cents, dtype=np.int64) / 100.0, null)


def _clock_codes() -> np.ndarray:
    """'HH:MM:SS' of every second of a day, as UCS-4 code points (86400 x 8)."""
    second = np.arange(DAY)
    fields = [second // 3600, second // 60 % 60, second % 60]
    codes = np.full((DAY, 8), ord(":"), dtype=np.uint32)
    for i, field in enumerate(fields):
        codes[:, 3 * i] = ord("0") + field // 10
        codes[:, 3 * i + 1] = ord("0") + field % 10
    return codes


_CLOCK = _clock_codes()


def _ts(seconds: np.ndarray, null: np.ndarray | None = None) -> list:
    """Epoch seconds as 'YYYY-MM-DD HH:MM:SS' (UTC), the SQLite storage form; PostgreSQL reads it in UTC."""
    seconds = np.asarray(seconds, dtype=np.int64)
    if not len(seconds):
        return []
    days, clock = np.divmod(seconds, DAY)
    first = int(days.min())
    calendar = np.datetime_as_string(np.arange(first, int(days.max()) + 1).astype("datetime64[D]")).astype("<U10")
    text = np.empty((len(seconds), 19), dtype=np.uint32)
    text[:, :10] = np.ascontiguousarray(calendar).view(np.uint32).reshape(-1, 10)[days - first]
    text[:, 10] = ord(" ")
    text[:, 11:] = _CLOCK[clock]
    return _nullable(text.view("<U19").ravel(), null)


def _pool(pool: Sequence, index: np.ndarray, null: np.ndarray | None = None) -> list:
    return _nullable(np.asarray(pool, dtype=object)[index], null)


def _choice(rng: np.random.Generator, n: int, weights: Sequence[float]) -> np.ndarray:
    p = np.asarray(weights, dtype=float)
    return rng.choice(len(p), size=n, p=p / p.sum())


def _starts(counts: np.ndarray) -> np.ndarray:
    starts = np.zeros(len(counts), dtype=np.int64)
    if len(counts) > 1:
        np.cumsum(counts[:-1], out=starts[1:])
    return starts


def _between(rng: np.random.Generator, low: np.ndarray, high: np.ndarray | int) -> np.ndarray:
    """Uniform whole seconds in [low, high] (elementwise, high >= low)."""
    low = np.asarray(low, dtype=np.int64)
    span = np.maximum(np.asarray(high, dtype=np.int64) - low, 0)
    return low + np.floor(rng.random(len(low)) * (span + 1)).astype(np.int64)


_CODE_ALPHABET = np.array([ord(c) for c in "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"], dtype=np.uint32)
_CODE_MASK = (1 << 40) - 1


def _codes(prefixes: Sequence[str], ids: np.ndarray, salt: int) -> list[str]:
    """Unique random-looking 8-character codes: (id * odd + salt) mod 2**40 is a bijection."""
    x = (np.asarray(ids, dtype=np.uint64) * np.uint64(0x9E3779B1) + np.uint64(salt)) & np.uint64(_CODE_MASK)
    digits = (x[:, None] >> (np.arange(8, dtype=np.uint64) * np.uint64(5))) & np.uint64(31)
    text = np.ascontiguousarray(_CODE_ALPHABET[digits]).view("<U8").ravel().tolist()
    return [prefix + code for prefix, code in zip(prefixes, text)]


def _ascii(text: str) -> str:
    text = text.translate(str.maketrans({"Ł": "L", "ł": "l", "Ø": "O", "ø": "o", "ß": "ss", "'": ""}))
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def _round_half_away(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator (denominator > 0) rounded half away from zero, as integers."""
    magnitude = (np.abs(numerator) * 2 + denominator) // (2 * denominator)
    return np.sign(numerator) * magnitude


def _run_ledger(customer: np.ndarray, kind: np.ndarray, value: np.ndarray, ref: np.ndarray) -> tuple[list, list]:
    """Points and balance of ledger entries sorted by (customer, time, kind).

    value: points for BONUS/ORDER, the points a return wants back for ORDER_RETURN (taken
    only as far as the balance goes), the fraction of the balance for REDEEM (multiples of
    10) and EXPIRE/SCHEDULE (multiples of 5); ref: a ROLLBACK's REDEEM entry. SCHEDULE
    entries (expirations still ahead) report their points but leave the balance alone.
    """
    customer_l, kind_l, value_l, ref_l = customer.tolist(), kind.tolist(), value.tolist(), ref.tolist()
    points = [0] * len(customer_l)
    balances = [0] * len(customer_l)
    balance, previous = 0, -1
    for i, (c, k, v) in enumerate(zip(customer_l, kind_l, value_l)):
        if c != previous:
            balance, previous = 0, c
        if k <= ORDER:
            p = int(v)
        elif balance <= 0 and k != ROLLBACK:
            p = 0
        elif k == ORDER_RETURN:
            p = -min(int(v), balance)
        elif k == REDEEM:
            p = -(int(v * balance) // 10 * 10)
        elif k == ROLLBACK:
            p = -points[ref_l[i]]
        else:
            p = -(int(v * balance) // 5 * 5)
            if k == SCHEDULE:
                points[i], balances[i] = -p, balance
                continue
        balance += p
        points[i], balances[i] = p, balance
    return points, balances


# ---------------------------------------------------------------------------------------
# Static tables: stores, campaigns, rewards
# ---------------------------------------------------------------------------------------


class _Stores:
    def __init__(self, rng: np.random.Generator, count: int):
        self.count = count
        ids = np.arange(1, count + 1)
        self.country = _choice(rng, count, COUNTRY_WEIGHTS[:NO_COUNTRY])
        self.country[: min(count, len(COUNTRIES))] = np.arange(min(count, len(COUNTRIES)))
        opening = rng.random(count) < 0.4
        created = np.where(opening, START + rng.integers(0, 30 * DAY, count), rng.integers(START, END - 60 * DAY, count))
        created.sort()
        later = rng.random(count) < 0.5
        updated = np.where(later, _between(rng, created, END), created)
        cities, names = [], []
        for i, country in enumerate(self.country.tolist()):
            city = CITIES[country][int(rng.integers(len(CITIES[country])))][0]
            cities.append(city)
            suffix = rng.random()
            names.append(f"Loyalty Mart {city}" + (", Centre" if suffix < 0.1 else f" #{i + 1}" if suffix < 0.3 else ""))
        self.by_country = [ids[self.country == c] for c in range(len(COUNTRIES))]
        self.columns = {
            "id": ids.tolist(),
            "code": [f"S{i:03d}" for i in ids.tolist()],
            "name": names,
            "city": cities,
            "country": _pool(COUNTRIES, self.country),
            "zone": _pool(ZONES, self.country, rng.random(count) < 0.05),
            "created_at": _ts(created),
            "updated_at": _ts(updated),
        }


def _campaigns(rng: np.random.Generator, count: int) -> tuple[dict[str, list], list[str], list[str]]:
    names, types, statuses, metadata = [], [], [], []
    for i in range(count):
        if i < len(FIXED_CAMPAIGNS):
            name, kind, status, meta = FIXED_CAMPAIGNS[i]
        else:
            kind = ["DISCOUNT_COUPONS", "GIFT_VOUCHERS", "PROMOTION"][int(rng.integers(3))]
            name, status = f"Campaign {i + 1}", ["ACTIVE", "INACTIVE", "EXPIRED"][int(rng.integers(3))]
            meta = {"generated": True, "wave": int(rng.integers(1, 10))} if rng.random() < 0.5 else None
        names.append(name)
        types.append(kind)
        statuses.append(status)
        metadata.append(None if meta is None else json.dumps(meta))
    created = np.sort(np.concatenate([
        START + rng.integers(0, 7 * DAY, min(count, 4)),
        rng.integers(START, END - 90 * DAY, max(count - 4, 0)),
    ]))
    start = created + rng.integers(0, 14 * DAY, count)
    expiration = start + rng.integers(60 * DAY, 540 * DAY, count)
    open_ended = np.array([kind in ("LOYALTY_PROGRAM", "GIFT_VOUCHERS", "REFERRAL_PROGRAM") for kind in types])
    updated = np.maximum(created, np.where(rng.random(count) < 0.6, _between(rng, created, END), created))
    columns = {
        "id": list(range(1, count + 1)),
        "name": names,
        "campaign_type": types,
        "status": statuses,
        "start_date": _ts(start),
        "expiration_date": _ts(expiration, open_ended),
        "metadata": metadata,
        "created_at": _ts(created),
        "updated_at": _ts(updated),
    }
    return columns, names, types


def _rewards(rng: np.random.Generator, count: int = 50) -> dict[str, list]:
    created = np.sort(rng.integers(START, END - 30 * DAY, count))
    updated = np.where(rng.random(count) < 0.5, _between(rng, created, END), created)
    names = [REWARD_NAMES[i % len(REWARD_NAMES)] + ("" if i < len(REWARD_NAMES) else f" ({i // len(REWARD_NAMES) + 1})")
             for i in range(count)]
    stock = rng.integers(0, 500, count)
    meta = [None if rng.random() < 0.5 else json.dumps({"sponsor": ["Loyalty Mart", "Café Zoë", "Partner, Inc."][i % 3]})
            for i in range(count)]
    return {
        "id": list(range(1, count + 1)),
        "name": names,
        "reward_type": _pool(REWARD_TYPES, _choice(rng, count, [0.6, 0.25, 0.15])),
        "points_cost": (rng.integers(1, 40, count) * 50).tolist(),
        "stock": _nullable(stock, rng.random(count) < 0.4),
        "active": (rng.random(count) < 0.8).tolist(),
        "metadata": meta,
        "created_at": _ts(created),
        "updated_at": _ts(updated),
    }


# ---------------------------------------------------------------------------------------
# Customers: profile attributes up front, computed columns filled chunk by chunk
# ---------------------------------------------------------------------------------------


class _Customers:
    def __init__(self, rng: np.random.Generator, n: int, stores: _Stores):
        self.n = n
        imported = rng.random(n) < 0.15  # the initial import at launch
        created = np.where(imported, START + rng.integers(0, 10 * DAY, n), rng.integers(START, END - 2 * DAY, n))
        self.created = np.sort(created)
        self.ids = np.arange(1, n + 1)
        self.source_id = [f"cust_{i:07d}" for i in self.ids.tolist()]
        self.country = _choice(rng, n, COUNTRY_WEIGHTS)
        self.gender = _choice(rng, n, [0.45, 0.42, 0.04, 0.09])
        home = np.zeros(n, dtype=np.int64)
        for c in range(len(COUNTRIES)):
            members = np.flatnonzero(self.country == c)
            pool = stores.by_country[c] if len(stores.by_country[c]) else np.arange(1, stores.count + 1)
            home[members] = pool[rng.integers(0, len(pool), len(members))]
        anywhere = self.country == NO_COUNTRY
        home[anywhere] = rng.integers(1, stores.count + 1, int(anywhere.sum()))
        home[rng.random(n) < 0.2] = 0
        self.home_store = home
        self.rng = rng
        # Computed columns, filled by the chunks.
        self.orders_total = np.zeros(n, dtype=np.int64)
        self.orders_count = np.zeros(n, dtype=np.int64)
        self.last_amount = np.zeros(n, dtype=np.int64)
        self.last_date = np.full(n, -1, dtype=np.int64)
        self.redeemed = np.zeros(n, dtype=np.int64)
        self.failed = np.zeros(n, dtype=np.int64)
        self.succeeded = np.zeros(n, dtype=np.int64)
        self.rollback_succeeded = np.zeros(n, dtype=np.int64)
        self.rollback_failed = np.zeros(n, dtype=np.int64)
        self.loyalty_points = np.zeros(n, dtype=np.int64)
        self.referred = np.zeros(n, dtype=np.int64)
        self.last_activity = self.created.copy()

    def columns(self, stores: _Stores) -> dict[str, list]:
        rng, n = self.rng, self.n
        # names
        female = rng.integers(0, len(FEMALE), n)
        male = rng.integers(0, len(MALE), n)
        either = rng.random(n) < 0.5
        use_female = (self.gender == 0) | ((self.gender >= 2) & either)
        first_pool = FEMALE + MALE
        first = np.where(use_female, female, len(FEMALE) + male)
        last = rng.integers(0, len(LAST), n)
        first_ascii = [_ascii(name) for name in first_pool]
        last_ascii = [_ascii(name) for name in LAST]
        form = rng.random(n)
        cjk = rng.integers(0, len(CJK_NAMES), n)
        names, locals_ = [], []
        for f, la, fm, cj in zip(first.tolist(), last.tolist(), form.tolist(), cjk.tolist(), strict=True):
            if fm < 0.02:
                names.append(CJK_NAMES[cj][0])
                locals_.append(CJK_NAMES[cj][1])
            else:
                names.append(f"{LAST[la]}, {first_pool[f]}" if fm < 0.03 else f"{first_pool[f]} {LAST[la]}")
                locals_.append(f"{first_ascii[f]}.{last_ascii[la]}")
        name_null = form > 0.99
        names_arr = np.asarray(names, dtype=object)
        names_arr[(form > 0.985) & ~name_null] = ""
        domain = rng.integers(0, len(EMAIL_DOMAINS), n)
        emails = [f"{local}{i}@{EMAIL_DOMAINS[d]}" for local, i, d in zip(locals_, self.ids.tolist(), domain.tolist())]
        # contact and address
        area = rng.integers(100, 999, n).tolist()
        subscriber = rng.integers(1_000_000, 9_999_999, n).tolist()
        compact = (rng.random(n) < 0.1).tolist()
        phone_country = np.where(self.country == NO_COUNTRY, 0, self.country).tolist()
        phones = [f"{PHONE_PREFIXES[c]}{a}{s}" if cp else f"{PHONE_PREFIXES[c]} {a} {s}"
                  for c, a, s, cp in zip(phone_country, area, subscriber, compact)]
        city, state, line1, postal = [None] * n, [None] * n, [None] * n, [None] * n
        house = rng.integers(1, 200, n)
        postal_digits = rng.integers(0, 1000, n)
        city_pick = rng.random(n)
        street_pick = rng.random(n)
        for c in range(len(COUNTRIES)):
            for i in np.flatnonzero(self.country == c).tolist():
                name, st, prefix, digits = CITIES[c][int(city_pick[i] * len(CITIES[c]))]
                street = STREETS[c][int(street_pick[i] * len(STREETS[c]))]
                city[i], state[i] = name, st
                line1[i] = f"{house[i]} {street}" if NUMBER_FIRST[c] else f"{street} {house[i]}"
                postal[i] = prefix + (f"{postal_digits[i] % 10 ** digits:0{digits}d}" if digits else "")
        line2_kind = rng.random(n)
        line2 = _pool(ADDRESS_LINE_2, rng.integers(0, len(ADDRESS_LINE_2), n), (line2_kind < 0.75) | (self.country == NO_COUNTRY))
        for i in np.flatnonzero((line2_kind >= 0.75) & (line2_kind < 0.8) & (self.country != NO_COUNTRY)).tolist():
            line2[i] = ""
        description_kind = rng.random(n)
        description = _pool(CUSTOMER_DESCRIPTIONS, rng.integers(0, len(CUSTOMER_DESCRIPTIONS), n), description_kind < 0.85)
        for i in np.flatnonzero((description_kind >= 0.85) & (description_kind < 0.9)).tolist():
            description[i] = ""
        birth = rng.integers(-29 * 365, 38 * 365, n)  # 1941 .. 2007
        birthdate = _nullable(np.datetime_as_string(birth.astype("datetime64[D]")), rng.random(n) < 0.08)
        # metadata: tier follows the loyalty points
        tier = np.searchsorted(np.array([200, 500, 900]), self.loyalty_points, side="right")
        tier_missing = (rng.random(n) < 0.15).tolist()
        newsletter = (rng.random(n) < 0.55).tolist()
        favourite = np.where(rng.random(n) < 0.6, self.home_store, 0).tolist()
        meta_kind = rng.random(n).tolist()
        metadata = []
        for t, tm, nl, fav, mk in zip(tier.tolist(), tier_missing, newsletter, favourite, meta_kind):
            if mk < 0.03:
                metadata.append(None)
                continue
            obj: dict[str, object] = {}
            if not tm:
                obj["tier"] = TIERS[t]
            obj["newsletter"] = nl
            if fav:
                obj["favourite_store"] = f"S{fav:03d}"
            metadata.append(json.dumps(obj))
        # updated_at: when the computed columns last changed, or a later profile edit
        edited = rng.random(n) < 0.25
        updated = np.maximum(self.last_activity, np.where(edited, _between(rng, self.created, END), self.created))
        no_orders = self.orders_count == 0
        return {
            "id": self.ids.tolist(),
            "source_id": self.source_id,
            "name": _nullable(names_arr, name_null),
            "description": description,
            "email": _nullable(np.asarray(emails, dtype=object), rng.random(n) < 0.07),
            "phone": _nullable(np.asarray(phones, dtype=object), rng.random(n) < 0.12),
            "gender": _pool(GENDERS, self.gender),
            "birthdate": birthdate,
            "address_city": city,
            "address_state": state,
            "address_line_1": line1,
            "address_line_2": line2,
            "address_country": _pool(COUNTRIES + [None], self.country),
            "address_postal_code": postal,
            "home_store_id": _nullable(self.home_store, self.home_store == 0),
            "metadata": metadata,
            "redemptions_total_redeemed": self.redeemed.tolist(),
            "redemptions_total_failed": self.failed.tolist(),
            "redemptions_total_succeeded": self.succeeded.tolist(),
            "redemptions_total_rolled_back": (self.rollback_succeeded + self.rollback_failed).tolist(),
            "redemptions_total_rollback_failed": self.rollback_failed.tolist(),
            "redemptions_total_rollback_succeeded": self.rollback_succeeded.tolist(),
            "orders_total_amount": _money(self.orders_total),
            "orders_total_count": self.orders_count.tolist(),
            "orders_average_amount": _money(_round_half_away(self.orders_total, np.maximum(self.orders_count, 1)), no_orders),
            "orders_last_order_amount": _money(self.last_amount, no_orders),
            "orders_last_order_date": _ts(np.maximum(self.last_date, START), no_orders),
            "loyalty_points": self.loyalty_points.tolist(),
            "loyalty_referred_customers": self.referred.tolist(),
            "created_at": _ts(self.created),
            "updated_at": _ts(updated),
        }


# ---------------------------------------------------------------------------------------
# One chunk of customers' activity
# ---------------------------------------------------------------------------------------


class _Ids:
    """The next id of each chunked table, so ids run on across chunks."""

    def __init__(self):
        self.next = {name: 1 for name in BIG_TABLES}

    def take(self, table: str, count: int) -> np.ndarray:
        first = self.next[table]
        self.next[table] = first + count
        return np.arange(first, first + count, dtype=np.int64)


def _chunk(
    rng: np.random.Generator,
    cust: _Customers,
    c0: int,
    c1: int,
    stores: _Stores,
    campaign_names: list[str],
    campaign_types: list[str],
    ids: _Ids,
    mean_span: float,
    salt: int,
    emit: Callable[[str, dict[str, list]], None],
) -> None:
    m = c1 - c0
    created_c = cust.created[c0:c1]
    country_c = cust.country[c0:c1]

    # ----- transactions: per customer, distinct times, ids in time order -----
    span = (ACTIVITY_END - created_c).astype(float)
    lam = 10.5 * span / mean_span * rng.gamma(2.0, 0.5, m)
    lam[rng.random(m) < 0.05] = 0.0
    ntx = rng.poisson(lam).astype(np.int64)
    T = int(ntx.sum())
    tcust = np.repeat(np.arange(m, dtype=np.int64), ntx)
    ttime = created_c[tcust] + (rng.random(T) * span[tcust]).astype(np.int64)
    ttime = ttime[np.lexsort((ttime, tcust))]
    rank = np.arange(T, dtype=np.int64) - np.repeat(_starts(ntx), ntx)
    key = np.maximum.accumulate(tcust * (1 << 36) + (ttime - rank)) if T else ttime
    ttime = np.minimum(key - tcust * (1 << 36) + rank, END)
    order = np.lexsort((tcust, ttime))
    tcust, ttime = tcust[order], ttime[order]
    tx_id = ids.take("transactions", T)
    by_cust = np.argsort(tcust, kind="stable")  # per customer, in time order
    cust_tx_start = _starts(ntx)

    status = _choice(rng, T, [0.22, 0.62, 0.07, 0.09])
    channel = _choice(rng, T, [0.55, 0.32, 0.13])
    home = cust.home_store[c0 + tcust]
    random_store = rng.integers(1, stores.count + 1, T)
    in_store = np.where((home > 0) & (rng.random(T) < 0.75), home, random_store)
    tstore = np.where(channel == 0, in_store, np.where(rng.random(T) < 0.1, random_store, 0))
    store_country = np.concatenate([[NO_COUNTRY], stores.country])[tstore]
    tcountry = np.where(tstore > 0, store_country, country_c[tcust])

    # lines
    nlines = _choice(rng, T, [0.35, 0.3, 0.2, 0.15]) + 1
    L = int(nlines.sum())
    ltx = np.repeat(np.arange(T, dtype=np.int64), nlines)
    lstarts = _starts(nlines)
    line_no = np.arange(L, dtype=np.int64) - np.repeat(lstarts, nlines) + 1
    product = _choice(rng, L, PRODUCT_WEIGHTS)
    quantity = _choice(rng, L, [0.72, 0.18, 0.07, 0.03]) + 1
    quantity = np.where(status[ltx] == RETURNED, -quantity, quantity)
    unit_price = np.array([p[2] for p in PRODUCTS], dtype=np.int64)[product]
    line_amount = quantity * unit_price
    subtotal = np.add.reduceat(line_amount, lstarts) if T else np.zeros(0, dtype=np.int64)
    items = np.add.reduceat(np.abs(quantity), lstarts) if T else np.zeros(0, dtype=np.int64)
    discounted = (status != RETURNED) & (rng.random(T) < 0.2)
    percent = np.array([5, 10, 15, 20])[rng.integers(0, 4, T)]
    discount = np.where(discounted, (subtotal * percent + 50) // 100, 0)
    amount = subtotal - discount
    delay = np.zeros(T, dtype=np.int64)
    r = rng.random(T)
    delay = np.where(status == PAID, np.where(r < 0.15, rng.integers(DAY, 500 * DAY, T), 0), delay)
    delay = np.where(status == FULFILLED, np.where(r < 0.08, rng.integers(30 * DAY, 600 * DAY, T),
                                                   rng.integers(HOUR, 5 * DAY, T)), delay)
    delay = np.where(status == CANCELED, rng.integers(5 * MINUTE, 2 * DAY, T), delay)
    delay = np.where(status == RETURNED, rng.integers(DAY, 45 * DAY, T), delay)
    tupdated = np.minimum(ttime + delay, END)

    line_ts = ttime[ltx]
    emit("transaction_lines", {
        "id": ids.take("transaction_lines", L).tolist(),
        "transaction_id": tx_id[ltx].tolist(),
        "line_no": line_no.tolist(),
        "sku": _pool([p[0] for p in PRODUCTS], product),
        "product_name": _pool([p[1] for p in PRODUCTS], product),
        "quantity": quantity.tolist(),
        "unit_price": _money(unit_price),
        "amount": _money(line_amount),
        "created_at": _ts(line_ts),
        "updated_at": _ts(np.where(status[ltx] == RETURNED, tupdated[ltx], line_ts)),
    })
    del ltx, product, quantity, unit_price, line_amount, line_ts, line_no

    # customer order aggregates
    g = slice(c0, c1)
    cust.orders_count[g] = ntx
    cust.orders_total[g] = np.rint(np.bincount(tcust, weights=amount, minlength=m)).astype(np.int64)
    last_pos = np.full(m, -1, dtype=np.int64)
    np.maximum.at(last_pos, tcust, np.arange(T, dtype=np.int64))
    has_tx = last_pos >= 0
    if T:
        cust.last_amount[g] = np.where(has_tx, amount[last_pos], 0)
        cust.last_date[g] = np.where(has_tx, ttime[last_pos], -1)
    activity = cust.last_activity[g]
    np.maximum.at(activity, tcust, ttime)

    # ----- vouchers (planned; times and ids are settled after the redemptions) -----
    earning_tx = status != CANCELED
    earners = np.bincount(tcust[earning_tx], minlength=m) > 0
    has_card = earners | (rng.random(m) < 0.2)
    card_owner = np.flatnonzero(has_card)
    n_personal = rng.poisson(1.0, m)
    personal_owner = np.repeat(np.arange(m, dtype=np.int64), n_personal)
    active_weight = ntx + 1.0
    n_referral = int(round(0.1 * m))
    referral_owner = rng.choice(m, size=n_referral, p=active_weight / active_weight.sum()) if m else np.zeros(0, np.int64)
    referral_owner = np.unique(referral_owner)
    n_generic = max(1, int(round(0.1 * m)))
    v_owner = np.concatenate([card_owner, personal_owner, referral_owner, np.full(n_generic, -1)]).astype(np.int64)
    v_kind = np.concatenate([np.full(len(card_owner), CARD), np.full(len(personal_owner), PERSONAL),
                             np.full(len(referral_owner), REFERRAL), np.full(n_generic, GENERIC)])
    V = len(v_owner)
    v_type = np.where(v_kind == CARD, LOYALTY, np.where((v_kind == PERSONAL) & (rng.random(V) < 0.25), GIFT, DISCOUNT))
    ctypes = np.array(campaign_types)
    discount_campaigns = np.flatnonzero(ctypes == "DISCOUNT_COUPONS")
    gift_campaigns = np.flatnonzero(ctypes == "GIFT_VOUCHERS")
    generic_campaigns = np.flatnonzero(np.isin(ctypes, ["DISCOUNT_COUPONS", "PROMOTION"]))
    v_campaign = np.select(
        [v_kind == CARD, v_kind == REFERRAL, v_type == GIFT, v_kind == GENERIC],
        [LOYALTY_CAMPAIGN_ID - 1, REFERRAL_CAMPAIGN_ID - 1,
         gift_campaigns[rng.integers(0, len(gift_campaigns), V)],
         generic_campaigns[rng.integers(0, len(generic_campaigns), V)]],
        discount_campaigns[rng.integers(0, len(discount_campaigns), V)],
    )
    owner_created = np.where(v_owner >= 0, created_c[np.maximum(v_owner, 0)], START)
    v_created = np.where(v_kind == CARD, owner_created, _between(rng, owner_created, ACTIVITY_END))

    # ----- redemptions -----
    R = int(rng.poisson(1.0 * m))
    redeemer = rng.choice(m, size=R, p=active_weight / active_weight.sum()) if m else np.zeros(0, np.int64)
    own_mask = v_kind <= PERSONAL
    own_sorted = np.flatnonzero(own_mask)[np.argsort(v_owner[own_mask], kind="stable")]
    own_count = np.bincount(v_owner[own_mask], minlength=m)
    own_start = _starts(own_count)
    generic_ids = np.flatnonzero(v_kind == GENERIC)
    referral_ids = np.flatnonzero(v_kind == REFERRAL)
    with_order = (ntx[redeemer] > 0) & (rng.random(R) < 0.65)
    order_pos = by_cust[np.minimum(cust_tx_start[redeemer] + np.floor(rng.random(R) * ntx[redeemer]).astype(np.int64),
                                   max(T - 1, 0))] if T else np.zeros(R, dtype=np.int64)
    free_date = _between(rng, created_c[redeemer], ACTIVITY_END)
    r_date = np.where(with_order, ttime[order_pos] if T else 0, free_date)
    r_order_amount = np.where(with_order, amount[order_pos] if T else 0, 0)
    pick = rng.random(R)
    u = rng.random(R)
    voucher = generic_ids[rng.integers(0, len(generic_ids), R)]
    own_ok = (pick < 0.7) & (own_count[redeemer] > 0)
    if len(own_sorted):
        own_pos = np.minimum(own_start[redeemer] + np.floor(u * own_count[redeemer]).astype(np.int64), len(own_sorted) - 1)
        voucher = np.where(own_ok, own_sorted[own_pos], voucher)
    if len(referral_ids):
        referral_pick = referral_ids[rng.integers(0, len(referral_ids), R)]
        referrer = v_owner[referral_pick]
        referral_ok = (pick >= 0.7) & (pick < 0.8) & (referrer != redeemer) & (created_c[referrer] <= r_date)
        voucher = np.where(referral_ok, referral_pick, voucher)
    r_type = v_type[voucher]
    fail = rng.random(R) < 0.12
    outcome = rng.random(R)
    rolled = ~fail & (outcome < 0.07)
    rollback_failed = ~fail & ~rolled & (outcome > 0.975)
    failure = np.where(r_type == LOYALTY, _choice(rng, R, [1, 1, 1, 1, 4]), rng.integers(0, NOT_ENOUGH_POINTS, R))

    r_updated = np.where(rolled | rollback_failed, np.minimum(r_date + rng.integers(HOUR, 20 * DAY, R), END), r_date)
    r_order_id = np.where(with_order, tx_id[order_pos] if T else 0, -1)
    loyalty = (r_type == LOYALTY) & ~fail

    # ----- points ledger: earnings, returns, loyalty redemptions, rollbacks, expirations -----
    # Deductions depend on the balance at the time (never below zero), so the balances are
    # run entry by entry (_run_ledger); everything else is vectorised.
    bonus_owner = card_owner[rng.random(len(card_owner)) < 0.3]
    earn_pos = np.flatnonzero((status == PAID) | (status == FULFILLED))
    return_pos = np.flatnonzero(status == RETURNED)
    red_pos = np.flatnonzero(loyalty)
    back_pos = np.flatnonzero(loyalty & rolled)
    holders = np.unique(np.concatenate([bonus_owner, tcust[earn_pos]]))
    X = int(round(0.38 * m)) if len(holders) else 0
    x_cust = holders[rng.integers(0, len(holders), X)] if X else np.zeros(0, dtype=np.int64)
    x_created = _between(rng, created_c[x_cust], END - DAY)
    x_expires = x_created + 365 * DAY
    x_expired = x_expires <= END
    x_when = np.where(x_expired, x_expires, x_created)
    parts = [  # (customer, time, kind, value, transaction id)
        (bonus_owner, created_c[bonus_owner] + rng.integers(1, 300, len(bonus_owner)), BONUS,
         np.array([100, 250, 500])[rng.integers(0, 3, len(bonus_owner))], np.full(len(bonus_owner), -1)),
        (tcust[earn_pos], ttime[earn_pos], ORDER, amount[earn_pos] // 100, tx_id[earn_pos]),
        (tcust[return_pos], ttime[return_pos], ORDER_RETURN, (-amount[return_pos]) // 100, tx_id[return_pos]),
        (redeemer[red_pos], r_date[red_pos], REDEEM, rng.uniform(0.1, 0.4, len(red_pos)), r_order_id[red_pos]),
        (redeemer[back_pos], r_updated[back_pos], ROLLBACK, np.zeros(len(back_pos)), r_order_id[back_pos]),
        (x_cust, x_when, np.where(x_expired, EXPIRE, SCHEDULE), rng.uniform(0.05, 0.25, X), np.full(X, -1)),
    ]
    offsets = np.cumsum([0] + [len(part[0]) for part in parts])
    p_cust = np.concatenate([part[0] for part in parts]).astype(np.int64)
    p_time = np.concatenate([part[1] for part in parts]).astype(np.int64)
    p_kind = np.concatenate([np.broadcast_to(part[2], len(part[0])) for part in parts]).astype(np.int64)
    p_value = np.concatenate([np.asarray(part[3], dtype=float) for part in parts])
    p_tx = np.concatenate([part[4] for part in parts]).astype(np.int64)
    # a rollback gives back what its redemption took
    p_ref = np.full(len(p_cust), -1, dtype=np.int64)
    redeem_entry = np.full(R, -1, dtype=np.int64)
    redeem_entry[red_pos] = offsets[3] + np.arange(len(red_pos))
    p_ref[offsets[4]:offsets[5]] = redeem_entry[back_pos]
    balance_order = np.lexsort((p_kind, p_time, p_cust))
    position = np.empty_like(balance_order)
    position[balance_order] = np.arange(len(balance_order))
    ref_sorted = np.where(p_ref[balance_order] >= 0, position[np.maximum(p_ref[balance_order], 0)], -1)
    sorted_points, sorted_balance = _run_ledger(
        p_cust[balance_order], p_kind[balance_order], p_value[balance_order], ref_sorted
    )
    p_points = np.empty(len(p_cust), dtype=np.int64)
    p_points[balance_order] = sorted_points
    balance = np.empty(len(p_cust), dtype=np.int64)
    balance[balance_order] = sorted_balance

    points = np.zeros(T, dtype=np.int64)
    points[earn_pos] = p_points[offsets[1]:offsets[2]]
    points[return_pos] = p_points[offsets[2]:offsets[3]]
    spend = np.zeros(R, dtype=np.int64)
    spend[red_pos] = -p_points[offsets[3]:offsets[4]]
    broke = loyalty & (spend == 0)
    fail |= broke
    failure = np.where(broke, NOT_ENOUGH_POINTS, failure)
    rolled &= ~fail
    rollback_failed &= ~fail
    loyalty &= ~fail
    r_updated = np.where(fail, r_date, r_updated)
    r_status = np.where(fail, 1, np.where(rolled, 2, 0))
    x_points = np.abs(p_points[offsets[5]:offsets[6]])
    keep_x = x_points > 0
    x_cust, x_created, x_expires, x_expired, x_points = (
        x_cust[keep_x], x_created[keep_x], x_expires[keep_x], x_expired[keep_x], x_points[keep_x])
    X = len(x_cust)

    kept = (p_points != 0) & (p_kind != SCHEDULE)
    k_cust, k_time, k_kind, k_tx = p_cust[kept], p_time[kept], p_kind[kept], p_tx[kept]
    k_points, k_balance = p_points[kept], balance[kept]
    cust.loyalty_points[g] = np.rint(np.bincount(k_cust, weights=k_points, minlength=m)).astype(np.int64)
    np.maximum.at(activity, k_cust, k_time)
    last_ledger = np.full(m, -1, dtype=np.int64)
    np.maximum.at(last_ledger, k_cust, k_time)
    id_order = np.lexsort((k_kind, k_cust, k_time))
    P = len(k_cust)
    emit("points_ledger", {
        "id": ids.take("points_ledger", P).tolist(),
        "customer_id": (c0 + 1 + k_cust[id_order]).tolist(),
        "transaction_id": _nullable(k_tx[id_order], k_tx[id_order] < 0),
        "campaign_id": [LOYALTY_CAMPAIGN_ID] * P,
        "points": k_points[id_order].tolist(),
        "balance_after": k_balance[id_order].tolist(),
        "reason": _pool(LEDGER_REASONS, k_kind[id_order]),
        "created_at": _ts(k_time[id_order]),
        "updated_at": _ts(k_time[id_order]),
    })
    emit("transactions", {
        "id": tx_id.tolist(),
        "number": [f"ORD-{i:08d}" for i in tx_id.tolist()],
        "customer_id": (c0 + 1 + tcust).tolist(),
        "store_id": _nullable(tstore, tstore == 0),
        "status": _pool(TX_STATUSES, status),
        "channel": _pool(TX_CHANNELS, channel),
        "currency": _pool(CURRENCIES, tcountry),
        "amount": _money(amount),
        "discount_amount": _money(discount),
        "items_count": items.tolist(),
        "points_earned": points.tolist(),
        "metadata": _pool(TX_METADATA, _choice(rng, T, TX_METADATA_WEIGHTS)),
        "created_at": _ts(ttime),
        "updated_at": _ts(tupdated),
    })

    value = np.select(
        [v_type == GIFT, v_kind == REFERRAL],
        [np.array(GIFT_VALUES)[rng.integers(0, len(GIFT_VALUES), V)], np.full(V, 1000)],
        0,
    )
    discount_type = np.where(v_type == DISCOUNT, _choice(rng, V, [0.5, 0.35, 0.1, 0.05]), -1)
    discount_type[v_kind == REFERRAL] = 0
    value = np.where(discount_type == 0, np.where(v_kind == REFERRAL, 1000,
                                                  np.array(AMOUNT_VALUES)[rng.integers(0, len(AMOUNT_VALUES), V)]), value)
    value = np.where(discount_type == 1, np.array(PERCENT_VALUES)[rng.integers(0, len(PERCENT_VALUES), V)], value)
    value = np.where(discount_type == 2, 100, np.where(discount_type == 3, 990, value))
    gift = (r_type == GIFT) & ~fail
    gift_cap = np.where(with_order & (r_order_amount > 0), r_order_amount, value[voucher])
    gift_amount = np.maximum(np.minimum(np.floor(value[voucher] * rng.uniform(0.1, 0.5, R)).astype(np.int64), gift_cap), 1)

    # ----- vouchers settled: created before their first redemption, ids in time order -----
    first_red = np.full(V, END + 1, dtype=np.int64)
    last_red = np.full(V, -1, dtype=np.int64)
    np.minimum.at(first_red, voucher, r_date)
    np.maximum.at(last_red, voucher, r_updated)
    redeemed_v = last_red >= 0
    room = np.minimum(np.maximum(first_red - owner_created, 0), 30 * DAY)
    lead = np.floor(rng.random(V) * (room + 1)).astype(np.int64)
    v_created = np.where(redeemed_v, np.minimum(v_created, first_red - lead), v_created)
    succeeded = r_status == 0
    redemption_count = np.bincount(voucher[succeeded], minlength=V)
    gift_spent = np.rint(np.bincount(voucher[gift & succeeded], weights=gift_amount[gift & succeeded], minlength=V)).astype(np.int64)
    v_order = np.argsort(v_created, kind="stable")
    v_id_of = np.empty(V, dtype=np.int64)
    v_id_of[v_order] = ids.take("vouchers", V)
    prefixes = np.array(["DV-", "GV-", "LC-"], dtype=object)[v_type]
    prefixes[v_kind == REFERRAL] = "REF-"
    prefixes[v_kind == GENERIC] = "PROMO-"
    code_of = np.asarray(_codes(prefixes.tolist(), v_id_of, salt), dtype=object)

    o = v_order  # rows in id order
    kind_o, type_o, created_o = v_kind[o], v_type[o], v_created[o]
    owner_o = v_owner[o]
    has_start = (rng.random(V) < 0.7) | (kind_o == CARD)
    validity_days = rng.integers(30, 730, V) * DAY
    expiration = np.maximum(created_o + validity_days, np.where(redeemed_v[o], last_red[o] + DAY, 0))
    no_expiration = (kind_o == CARD) | (rng.random(V) < 0.3)
    updated_o = np.maximum(created_o, np.where(redeemed_v[o], last_red[o], created_o))
    card_change = np.where((kind_o == CARD) & (owner_o >= 0), last_ledger[np.maximum(owner_o, 0)], -1)
    updated_o = np.maximum(updated_o, card_change)
    updated_o = np.where(rng.random(V) < 0.15, _between(rng, updated_o, END), updated_o)
    quantity_pick = np.array([0, 1, 1, 3, 5, 10])[rng.integers(0, 6, V)]
    quantity_pick = np.where(kind_o == GENERIC, np.where(rng.random(V) < 0.5, 1000, 0), quantity_pick)
    unlimited = (quantity_pick == 0) | (kind_o == CARD)
    redemption_quantity = np.maximum(quantity_pick, redemption_count[o])
    dtype_o = discount_type[o]
    owner_ok = owner_o >= 0
    owner_src = np.asarray(cust.source_id[c0:c1] + [None], dtype=object)[np.where(owner_ok, owner_o, m)]
    info_kind = rng.random(V)
    additional_info = _pool(ADDITIONAL_INFO, rng.integers(0, len(ADDITIONAL_INFO), V), info_kind < 0.8)
    for i in np.flatnonzero((info_kind >= 0.8) & (info_kind < 0.85)).tolist():
        additional_info[i] = ""
    codes_o = code_of[o].tolist()
    has_qr = rng.random(V) < 0.9
    timeframe = rng.random(V) < 0.08
    loyalty_balance = np.where(owner_ok, cust.loyalty_points[c0 + np.maximum(owner_o, 0)], 0)
    emit("vouchers", {
        "id": v_id_of[o].tolist(),
        "code": codes_o,
        "voucher_type": _pool(VOUCHER_TYPES, type_o),
        "value": _money(value[o], type_o == LOYALTY),
        "discount_type": _pool(DISCOUNT_TYPES, np.maximum(dtype_o, 0), dtype_o < 0),
        "campaign": _pool(campaign_names, v_campaign[o]),
        "campaign_id": (v_campaign[o] + 1).tolist(),
        "category": _pool(VOUCHER_CATEGORIES, rng.integers(0, len(VOUCHER_CATEGORIES), V)),
        "start_date": _ts(created_o, ~has_start),
        "expiration_date": _ts(expiration, no_expiration),
        "gift_balance": _money(np.maximum(value[o] - gift_spent[o], 0), type_o != GIFT),
        "loyalty_balance": _nullable(loyalty_balance, type_o != LOYALTY),
        "redemption_quantity": _nullable(redemption_quantity, unlimited),
        "redemption_count": redemption_count[o].tolist(),
        "active": ((rng.random(V) < 0.9) & (no_expiration | (expiration > END))).tolist(),
        "qr_code": [f"https://qr.example.com/v1/{c}.png" if q else None for c, q in zip(codes_o, has_qr.tolist())],
        "bar_code": [f"https://barcode.example.com/v1/{c}.png" if q else None for c, q in zip(codes_o, has_qr.tolist())],
        "metadata": _pool(VOUCHER_METADATA, _choice(rng, V, VOUCHER_METADATA_WEIGHTS)),
        "is_referral_code": (kind_o == REFERRAL).tolist(),
        "validity_timeframe_interval": _pool(["P1D", "P1W"], rng.integers(0, 2, V), ~timeframe),
        "validity_timeframe_duration": _pool(["PT12H", "PT2H"], rng.integers(0, 2, V), ~timeframe),
        "validity_day_of_week": _pool(["1,2,3,4,5", "0,6", "5"], rng.integers(0, 3, V), rng.random(V) >= 0.1),
        "discount_amount_limit": _money(np.array([2000, 5000, 10000])[rng.integers(0, 3, V)],
                                        (dtype_o != 1) | (rng.random(V) >= 0.4)),
        "additional_info": additional_info,
        "customer_id": _nullable(c0 + 1 + owner_o, ~owner_ok),
        "customer_source_id": owner_src.tolist(),
        "discount_unit_type": _pool([p[0] for p in PRODUCTS], rng.integers(0, len(PRODUCTS), V), dtype_o != 2),
        "discount_unit_effect": _pool(UNIT_EFFECTS, rng.integers(0, len(UNIT_EFFECTS), V), dtype_o != 2),
        "created_at": _ts(created_o),
        "updated_at": _ts(updated_o),
    })
    v_code_list = code_of

    # ----- redemptions written, customer redemption aggregates -----
    r_order = np.lexsort((np.arange(R), r_date))
    rr = r_order
    r_meta = _pool(REDEMPTION_METADATA, _choice(rng, R, REDEMPTION_METADATA_WEIGHTS))
    meta_arr = np.asarray(r_meta, dtype=object)
    meta_arr[rollback_failed] = ROLLBACK_FAILED_METADATA
    meta_arr[rolled] = ROLLED_BACK_METADATA
    tracking_null = rng.random(R) < 0.1
    tracking = np.asarray(cust.source_id[c0:c1], dtype=object)[redeemer] if R else np.zeros(0, dtype=object)
    r_store = np.where(with_order, tstore[order_pos] if T else 0, 0)
    emit("redemptions", {
        "id": ids.take("redemptions", R).tolist(),
        "object": ["redemption"] * R,
        "date": _ts(r_date[rr]),
        "voucher_code": v_code_list[voucher[rr]].tolist(),
        "campaign": _pool(campaign_names, v_campaign[voucher[rr]]),
        "promotion_tier_id": _pool(PROMOTION_TIERS, rng.integers(0, len(PROMOTION_TIERS), R), rng.random(R) >= 0.1),
        "customer_id": (c0 + 1 + redeemer[rr]).tolist(),
        "tracking_id": _nullable(tracking[rr], tracking_null[rr]),
        "order_id": _nullable(r_order_id[rr], ~with_order[rr]),
        "store_id": _nullable(r_store[rr], r_store[rr] == 0),
        "order_amount": _money(r_order_amount[rr], ~with_order[rr]),
        "gift_amount": _money(gift_amount[rr], ~gift[rr]),
        "loyalty_points": _nullable(spend[rr], ~loyalty[rr]),
        "result": _pool(["SUCCESS", "FAILURE"], fail[rr].astype(np.int64)),
        "status": _pool(REDEMPTION_STATUSES, r_status[rr]),
        "failure_code": _pool([f[0] for f in FAILURES], failure[rr], ~fail[rr]),
        "failure_message": _pool([f[1] for f in FAILURES], failure[rr], ~fail[rr]),
        "metadata": meta_arr[rr].tolist(),
        "created_at": _ts(r_date[rr]),
        "updated_at": _ts(r_updated[rr]),
    })
    cust.redeemed[g] = np.bincount(redeemer, minlength=m)
    cust.failed[g] = np.bincount(redeemer[fail], minlength=m)
    cust.succeeded[g] = np.bincount(redeemer[~fail], minlength=m)
    cust.rollback_succeeded[g] = np.bincount(redeemer[rolled], minlength=m)
    cust.rollback_failed[g] = np.bincount(redeemer[rollback_failed], minlength=m)
    np.maximum.at(activity, redeemer, r_updated)
    referral_success = (v_kind[voucher] == REFERRAL) & succeeded
    if referral_success.any():
        pairs = np.unique(np.stack([v_owner[voucher[referral_success]], redeemer[referral_success]]), axis=1)
        cust.referred[g] = np.bincount(pairs[0], minlength=m)
    cust.last_activity[g] = activity

    # ----- publications: personal and referral vouchers to their owners, generic ones to anyone -----
    published = np.flatnonzero((v_kind == PERSONAL) | (v_kind == REFERRAL))
    n_extra = int(round(0.4 * m))
    extra_voucher = generic_ids[rng.integers(0, len(generic_ids), n_extra)]
    extra_cust = rng.integers(0, m, n_extra)
    pub_voucher = np.concatenate([published, extra_voucher])
    pub_cust = np.concatenate([v_owner[published], extra_cust])
    earliest = np.concatenate([v_created[published], np.maximum(v_created[extra_voucher], created_c[extra_cust])])
    soon = np.minimum(np.minimum(earliest + rng.integers(0, 600, len(pub_voucher)), first_red[pub_voucher]), END)
    pub_date = np.where(np.arange(len(pub_voucher)) < len(published), soon, _between(rng, earliest, END))
    B = len(pub_voucher)
    pub_order = np.lexsort((np.arange(B), pub_date))
    pb = pub_order
    winner = rng.random(B)
    pub_updated = np.where(rng.random(B) < 0.1, _between(rng, pub_date, END), pub_date)
    emit("publications", {
        "id": ids.take("publications", B).tolist(),
        "voucher_code": v_code_list[pub_voucher[pb]].tolist(),
        "customer_id": (c0 + 1 + pub_cust[pb]).tolist(),
        "date": _ts(pub_date[pb]),
        "channel": _pool(PUBLICATION_CHANNELS, _choice(rng, B, [0.4, 0.15, 0.05, 0.25, 0.15])),
        "campaign": _pool(campaign_names, v_campaign[pub_voucher[pb]]),
        "is_winner": _nullable(winner < 0.05, winner > 0.85),
        "metadata": _pool(PUBLICATION_METADATA, _choice(rng, B, PUBLICATION_METADATA_WEIGHTS)),
        "created_at": _ts(pub_date[pb]),
        "updated_at": _ts(pub_updated[pb]),
    })

    # ----- points expirations, on the owner's loyalty card -----
    card_of = np.full(m, -1, dtype=np.int64)
    card_of[v_owner[v_kind == CARD]] = v_id_of[v_kind == CARD]
    x_order = np.lexsort((np.arange(X), x_created))
    xo = x_order
    emit("points_expirations", {
        "id": ids.take("points_expirations", X).tolist(),
        "customer_id": (c0 + 1 + x_cust[xo]).tolist(),
        "campaign_id": [LOYALTY_CAMPAIGN_ID] * X,
        "voucher_id": card_of[x_cust[xo]].tolist(),
        "points": x_points[xo].tolist(),
        "status": _pool(["ACTIVE", "EXPIRED"], x_expired[xo].astype(np.int64)),
        "expires_at": _ts(x_expires[xo]),
        "created_at": _ts(x_created[xo]),
        "updated_at": _ts(np.where(x_expired, x_expires, x_created)[xo]),
    })


# ---------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------


def _normalise_url(url: str | sa.URL) -> sa.URL:
    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        # The loader below uses psycopg 3's COPY, whatever driver the URL named.
        return parsed.set(drivername="postgresql+psycopg")
    if backend in {"mysql", "mariadb"}:
        # The loader below uses PyMySQL's multi-row INSERTs, whatever driver the URL named.
        return parsed.set(drivername=f"{backend}+pymysql")
    if backend != "sqlite":
        raise ValueError(f"the demo database needs SQLite, PostgreSQL or MySQL/MariaDB, not {parsed.drivername!r}")
    if not parsed.database or parsed.database == ":memory:":
        raise ValueError("the demo SQLite database needs a file path: sqlite:///path/to/demo.sqlite")
    return parsed


def _tables(schema: str | None) -> tuple[sa.MetaData, dict[str, sa.Table], dict[str, list[str]]]:
    """One table per distinct catalog table (coupons shares vouchers), and the columns to index."""
    catalog = load_builtin_catalog()
    metadata = sa.MetaData(schema=schema)
    tables: dict[str, sa.Table] = {}
    indexed: dict[str, list[str]] = {}
    for model in catalog.models.values():
        name = model.table.rpartition(".")[2]
        if name in tables:
            continue
        tables[name] = model_table(model, metadata)
        if name not in BIG_TABLES:
            continue
        columns = [model.column_of(f) for f in (model.event_date, "created_at", model.updated_at)
                   if f and f in model.fields]
        columns += [c for c in INDEXED_KEYS if c in tables[name].c]
        indexed[name] = list(dict.fromkeys(c for c in columns if c != model.column_of(model.primary_key)))
    return metadata, tables, indexed


class _Loader:
    """Writes column dicts into the tables: executemany on SQLite, COPY on PostgreSQL, multi-row INSERTs on MySQL/MariaDB."""

    def __init__(self, engine: sa.Engine, url: sa.URL, tables: dict[str, sa.Table]):
        self.engine, self.tables = engine, tables
        self.counts: dict[str, int] = {}
        self.postgres = engine.dialect.name == "postgresql"
        self.mysql = engine.dialect.name in {"mysql", "mariadb"}
        if self.mysql:
            self._raw = engine.raw_connection()
            self.connection = self._raw.driver_connection
            with self.connection.cursor() as cursor:
                # The generator's timestamps are UTC text; DATETIME keeps them as written whatever the zone.
                cursor.execute("SET time_zone = '+00:00'")
                cursor.execute("SET unique_checks = 0")
        elif self.postgres:
            self._raw = engine.raw_connection()
            self.connection = self._raw.driver_connection
            self.connection.execute("SET TIME ZONE 'UTC'")
            self.connection.execute("SET synchronous_commit = off")
        else:
            self._raw = None
            self.connection = sqlite3.connect(url.database, isolation_level=None)
            self.connection.execute("PRAGMA journal_mode = OFF")
            self.connection.execute("PRAGMA synchronous = OFF")
            self.connection.execute("PRAGMA cache_size = -65536")
            self.connection.execute("BEGIN")

    def write(self, name: str, data: dict[str, list]) -> None:
        table = self.tables[name]
        unknown = set(data) - set(table.c.keys())
        if unknown:
            raise ValueError(f"the generator writes {sorted(unknown)} but the catalog's {name} table lacks them")
        lengths = {len(values) for values in data.values()}
        if len(lengths) != 1:
            raise ValueError(f"{name}: columns of different lengths {sorted(lengths)}")
        n = lengths.pop()
        self.counts[name] = self.counts.get(name, 0) + n
        if n == 0:
            return
        names = [column.name for column in table.c]
        rows = list(zip(*[data.get(column, [None] * n) for column in names]))
        if self.mysql:
            quoted = ", ".join(f"`{column}`" for column in names)
            placeholders = ", ".join(["%s"] * len(names))
            # PyMySQL turns an INSERT ... VALUES executemany into multi-row statements of up to 1 MB each.
            with self.connection.cursor() as cursor:
                cursor.executemany(f"INSERT INTO `{table.name}` ({quoted}) VALUES ({placeholders})", rows)
        elif self.postgres:
            from psycopg import sql

            target = sql.Identifier(*(part for part in (table.schema, table.name) if part))
            statement = sql.SQL("COPY {} ({}) FROM STDIN").format(target, sql.SQL(", ").join(map(sql.Identifier, names)))
            with self.connection.cursor() as cursor, cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            quoted = ", ".join(f'"{column}"' for column in names)
            placeholders = ", ".join("?" * len(names))
            self.connection.executemany(f'INSERT INTO "{table.name}" ({quoted}) VALUES ({placeholders})', rows)

    def finish(self, indexed: dict[str, list[str]]) -> None:
        statements = []
        for name, columns in indexed.items():
            table = self.tables[name]
            for column in columns:
                # MySQL indexes a TEXT column by a prefix only (its codes are far shorter than 64 characters).
                prefix = {"mysql_length": 64} if isinstance(table.c[column].type, sa.Text) else {}
                index = sa.Index(f"ix_{name}_{column}", table.c[column], **prefix)
                statements.append(str(CreateIndex(index).compile(dialect=self.engine.dialect)))
        if self.mysql:
            self.connection.commit()
            with self.connection.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
                for table in self.tables.values():
                    cursor.execute(f"ANALYZE TABLE `{table.name}`")
                    cursor.fetchall()
        elif self.postgres:
            self.connection.commit()
            for statement in statements:
                self.connection.execute(statement)
            for table in self.tables.values():
                self.connection.execute(f"ANALYZE {_pg_name(table)}")
            self.connection.commit()
        else:
            for statement in statements:
                self.connection.execute(statement)
            self.connection.execute("COMMIT")

    def close(self) -> None:
        if self._raw is not None:
            self._raw.close()
        else:
            self.connection.close()


def _pg_name(table: sa.Table) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in (table.schema, table.name) if part)


def generate_demo_database(
    url: str,
    *,
    customers: int = 1000,
    seed: int = 42,
    schema: str | None = None,
    replace: bool = True,
) -> dict[str, int]:
    """Create the demo loyalty schema at the SQLAlchemy `url` and fill it; returns row counts per table."""
    if customers < 1:
        raise ValueError("customers must be at least 1")
    parsed = _normalise_url(url)
    if schema is not None and parsed.get_backend_name() != "postgresql":
        raise ValueError("schema applies to PostgreSQL only")
    metadata, tables, indexed = _tables(schema)
    engine = sa.create_engine(parsed)
    try:
        with engine.begin() as connection:
            if schema is not None:
                connection.execute(sa.schema.CreateSchema(schema, if_not_exists=True))
            if replace:
                metadata.drop_all(connection, checkfirst=True)
            else:
                existing = [name for name in tables if sa.inspect(connection).has_table(name, schema=schema)]
                if existing:
                    raise ValueError(f"tables already exist: {', '.join(existing)} (pass replace=True to rebuild)")
            metadata.create_all(connection)
        loader = _Loader(engine, parsed, tables)
        try:
            _fill(loader.write, customers=customers, seed=seed)
            loader.finish(indexed)
        finally:
            loader.close()
        return {name: loader.counts.get(name, 0) for name in tables}
    finally:
        engine.dispose()


def _fill(emit: Callable[[str, dict[str, list]], None], *, customers: int, seed: int) -> None:
    """Generate every table, handing each batch of columns to `emit` (table name, columns)."""
    static = np.random.default_rng([seed, 0])
    stores = _Stores(static, min(1000, max(5, customers // 200)))
    emit("stores", stores.columns)
    campaign_columns, campaign_names, campaign_types = _campaigns(static, 10 + customers // 10_000)
    emit("campaigns", campaign_columns)
    emit("rewards", _rewards(static))
    cust = _Customers(np.random.default_rng([seed, 1]), customers, stores)
    mean_span = float(np.mean(ACTIVITY_END - cust.created))
    ids = _Ids()
    salt = (seed * 2654435761 + 0x5BD1E995) & _CODE_MASK
    for number, c0 in enumerate(range(0, customers, CHUNK_CUSTOMERS)):
        rng = np.random.default_rng([seed, 2, number])
        c1 = min(customers, c0 + CHUNK_CUSTOMERS)
        _chunk(rng, cust, c0, c1, stores, campaign_names, campaign_types, ids, mean_span, salt, emit)
    emit("customers", cust.columns(stores))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="export-pipelines demo-db",
        description="Build the demo loyalty database (SQLite, PostgreSQL or MySQL/MariaDB) with deterministic sample data.",
    )
    parser.add_argument("--url", default="sqlite:///demo.sqlite", help="SQLAlchemy URL (default: sqlite:///demo.sqlite)")
    parser.add_argument("--customers", type=int, default=1000, help="number of customers; the rest scales (default 1000)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--schema", default=None, help="PostgreSQL schema for the tables (created if missing)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    counts = generate_demo_database(args.url, customers=args.customers, seed=args.seed, schema=args.schema)
    elapsed = time.perf_counter() - started
    shown = sa.make_url(args.url).render_as_string(hide_password=True)
    for name, count in counts.items():
        print(f"{name:20s} {count:>10,d}")
    print(f"{'total':20s} {sum(counts.values()):>10,d}")
    print(f"built {shown} in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
