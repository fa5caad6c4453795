"""An endless, realistic transaction stream for demos and load tests (``fraud produce --simulate``).

Follows the handbook's simulator (customers and terminals on a 100x100 map, each
customer spending at the terminals within ``radius``, with its own mean amount
and daily frequency) and its three fraud scenarios, plus two e-commerce ones:

1. amount above 220;
2. compromised terminals: every transaction there for 28 days is fraud;
3. compromised cards: a third of their transactions for 14 days, amount x5;
4. card testing: a burst of small amounts on a stolen card within minutes;
5. account takeover: a run of large purchases at terminals the card never used.

Rows come day by day in event-time order with the handbook's columns, so the
replay, the features and the model take them like the published dataset.
"""
from __future__ import annotations

from collections import namedtuple
from datetime import datetime, timedelta
from typing import Iterator

import numpy as np

Transaction = namedtuple("Transaction", "TRANSACTION_ID TX_DATETIME CUSTOMER_ID TERMINAL_ID TX_AMOUNT TX_FRAUD "
                                        "TX_FRAUD_SCENARIO")
SCENARIOS = {0: "legitimate", 1: "amount above 220", 2: "compromised terminal", 3: "compromised card",
             4: "card testing", 5: "account takeover"}


class Simulator:
    def __init__(self, customers: int = 5000, terminals: int = 10000, radius: float = 5.0, seed: int = 0,
                 start: datetime = datetime(2026, 1, 1), first_id: int = 0):
        self.rng = np.random.default_rng(seed)
        rng = self.rng
        self.customer_xy = rng.uniform(0, 100, (customers, 2))
        self.mean_amount = rng.uniform(5, 100, customers)
        self.tx_per_day = rng.uniform(0, 4, customers)
        terminal_xy = rng.uniform(0, 100, (terminals, 2))
        self.reachable = []
        for chunk in np.array_split(self.customer_xy, max(1, customers // 250)):  # bounded memory
            distances = np.linalg.norm(chunk[:, None, :] - terminal_xy[None, :, :], axis=2)
            self.reachable += [np.flatnonzero(row < radius) for row in distances]
        self.terminals, self.customers = terminals, customers
        self.day, self.start, self.next_id = 0, start, first_id
        self.compromised_terminals: dict[int, int] = {}  # terminal -> last compromised day
        self.compromised_cards: dict[int, int] = {}      # customer -> last compromised day
        self.per_day = max(1, round(customers / 5000 * 3)), max(1, round(terminals / 10000 * 2))

    def transactions(self) -> Iterator[Transaction]:
        """Endless transactions in event-time order, one simulated day at a time."""
        while True:
            yield from self._one_day()
            self.day += 1

    def _one_day(self) -> list[Transaction]:
        rng, day = self.rng, self.day
        cards_per_day, terminals_per_day = self.per_day
        for terminal in rng.choice(self.terminals, terminals_per_day, replace=False):
            self.compromised_terminals[int(terminal)] = day + 27
        for card in rng.choice(self.customers, cards_per_day, replace=False):
            self.compromised_cards[int(card)] = day + 13
        rows = []  # (seconds into the day, customer, terminal, amount, scenario)
        for customer in range(self.customers):
            places = self.reachable[customer]
            if not len(places):
                continue
            for _ in range(rng.poisson(self.tx_per_day[customer])):
                seconds = rng.normal(43200, 20000)
                if 0 < seconds < 86400:
                    mean = self.mean_amount[customer]
                    amount = rng.normal(mean, mean / 2)
                    rows.append([seconds, customer, int(rng.choice(places)),
                                 amount if amount > 0 else rng.uniform(0, 2 * mean), 0])
        for row in rows:
            if self.compromised_cards.get(row[1], -1) >= day and rng.random() < 1 / 3:
                row[3], row[4] = row[3] * 5, 3
            if self.compromised_terminals.get(row[2], -1) >= day:
                row[4] = 2
            if row[3] > 220 and row[4] == 0:
                row[4] = 1
        rows += self._card_testing(rng) + self._account_takeover(rng)
        rows.sort(key=lambda r: r[0])
        midnight = self.start + timedelta(days=day)
        out = []
        for seconds, customer, terminal, amount, scenario in rows:
            out.append(Transaction(self.next_id, midnight + timedelta(seconds=int(seconds)), customer, terminal,
                                   round(float(amount), 2), int(scenario > 0), scenario))
            self.next_id += 1
        return out

    def _card_testing(self, rng) -> list[list]:
        card, begin = int(rng.integers(self.customers)), rng.uniform(0, 86000)
        burst = [[begin + i * rng.uniform(5, 40), card, int(rng.integers(self.terminals)), rng.uniform(0.5, 3.0), 4]
                 for i in range(int(rng.integers(5, 16)))]
        return [row for row in burst if row[0] < 86400]

    def _account_takeover(self, rng) -> list[list]:
        card = int(rng.integers(self.customers))
        unusual = np.setdiff1d(np.arange(self.terminals), self.reachable[card])
        begin = rng.uniform(0, 80000)
        return [[begin + i * rng.uniform(60, 900), card, int(rng.choice(unusual)),
                 self.mean_amount[card] * rng.uniform(3, 8), 5] for i in range(int(rng.integers(2, 6)))]
