// Draws the dashboard from its JSON endpoint (the URL is in data-url on #content-main).
// A file, not an inline script: the Content-Security-Policy allows scripts from this
// site only. Text from the server is written with textContent, never as markup.
"use strict";

(function () {
  const root = document.querySelector(".dashboard[data-url]");
  if (!root) {
    return;
  }
  const status = document.getElementById("dashboard-status");
  const charts = {};

  function field(name, value) {
    for (const element of root.querySelectorAll('[data-field="' + name + '"]')) {
      element.textContent = value;
    }
  }

  function cell(row, text, numeric) {
    const td = document.createElement("td");
    td.textContent = text;
    if (numeric) {
      td.className = "number";
    }
    row.appendChild(td);
  }

  // Amounts of one currency only are ever added: "0.1500 EUR; 2.0000 USD".
  function margins(list) {
    return list.length === 0
      ? "–"
      : list.map((m) => m.amount + " " + m.currency).join("; ");
  }

  function fillMoney(totals) {
    const margin = document.getElementById("dashboard-margin");
    const sellCost = document.getElementById("dashboard-sell-cost");
    margin.replaceChildren();
    sellCost.replaceChildren();
    if (totals.money.length === 0) {
      margin.appendChild(document.createElement("li")).textContent = "–";
    }
    for (const money of totals.money) {
      margin.appendChild(document.createElement("li")).textContent =
        money.margin + " " + money.currency;
      sellCost.appendChild(document.createElement("li")).textContent =
        money.currency + ": sell " + money.sell + ", cost " + money.cost;
    }
    field(
      "without_margin",
      totals.without_margin > 0
        ? totals.without_margin + " calls sold and bought in different currencies have no margin."
        : ""
    );
  }

  function fillTable(table, rows) {
    const body = table.tBodies[0];
    body.replaceChildren();
    if (rows.length === 0) {
      const tr = body.insertRow();
      cell(tr, "No calls in this period.", false);
      tr.cells[0].colSpan = 5;
      return;
    }
    for (const row of rows) {
      const tr = body.insertRow();
      cell(tr, row.name, false);
      cell(tr, String(row.calls), true);
      cell(tr, row.asr, true);
      cell(tr, row.acd_s, true);
      cell(tr, margins(row.margins), true);
    }
  }

  function fillSecurity(security) {
    const section = document.getElementById("dashboard-security");
    if (!security.available) {
      section.hidden = true;
      return;
    }
    const body = document.getElementById("table-security").tBodies[0];
    body.replaceChildren();
    if (security.events.length === 0) {
      const tr = body.insertRow();
      cell(tr, "No recent events.", false);
      tr.cells[0].colSpan = 5;
    }
    for (const event of security.events) {
      const tr = body.insertRow();
      cell(tr, event.at.replace("T", " ").slice(0, 19), false);
      cell(tr, event.kind, false);
      cell(tr, event.address, false);
      cell(tr, event.username, false);
      cell(tr, event.detail, false);
    }
  }

  function label(iso, bucketSeconds) {
    // "2026-03-01T12:05:00+00:00" -> "12:05", or the date for daily buckets.
    return bucketSeconds >= 86400 ? iso.slice(0, 10) : iso.slice(5, 16).replace("T", " ");
  }

  function draw(id, config) {
    if (typeof window.Chart !== "function") {
      return;
    }
    if (charts[id]) {
      charts[id].destroy();
    }
    const canvas = document.getElementById(id);
    config.options = Object.assign(
      { responsive: true, maintainAspectRatio: false, animation: false },
      config.options || {}
    );
    charts[id] = new window.Chart(canvas, config);
  }

  function render(data) {
    if (data.live.available) {
      field("live", String(data.live.active_calls));
      var note = "in progress now, " + data.live.calls_per_second + " calls/s";
      if (data.live.handler_errors > 0) {
        note += "; " + data.live.handler_errors + " messages failed on a switch error (see its log)";
      }
      field("live_note", note);
      field("bindings", String(data.live.bindings));
      field("registrations_note", "phones registered now, for " +
        data.live.registered_accounts + " accounts");
    } else {
      field("live", String(data.live.calls_last_minute));
      field("live_note", data.live.note + " Shown: calls ended in the last minute.");
      field("bindings", "–");
      field("registrations_note", "known to the running switch only");
    }
    if (data.fraud && data.fraud.available) {
      field("fraud_open", String(data.fraud.open_events));
      field("fraud_bans", String(data.fraud.active_bans));
      field("fraud_suspensions", String(data.fraud.suspensions));
    }
    field("calls", String(data.totals.calls));
    field("answered", String(data.totals.answered));
    field("asr", data.totals.asr);
    field("acd_s", data.totals.acd_s);
    fillMoney(data.totals);

    const labels = data.series.map((b) => label(b.start, data.bucket_seconds));
    draw("chart-cps", {
      type: "line",
      data: {
        labels: labels,
        datasets: [{ label: "calls per second", data: data.series.map((b) => Number(b.cps)) }],
      },
      options: { scales: { y: { beginAtZero: true } } },
    });
    draw("chart-asr", {
      type: "line",
      data: {
        labels: labels,
        // A bucket without calls has no ASR: null leaves a gap, not a drop to 0 %.
        datasets: [
          {
            label: "ASR %",
            data: data.series.map((b) => (b.asr === null ? null : Number(b.asr))),
            spanGaps: false,
          },
        ],
      },
      options: { scales: { y: { beginAtZero: true, max: 100 } } },
    });
    draw("chart-destinations", {
      type: "bar",
      data: {
        labels: data.by_destination.map((r) => r.name),
        datasets: [
          { label: "calls", data: data.by_destination.map((r) => r.calls) },
          { label: "answered", data: data.by_destination.map((r) => r.answered) },
        ],
      },
      options: { indexAxis: "y" },
    });
    const currencies = [];
    for (const row of data.by_customer) {
      for (const m of row.margins) {
        if (!currencies.includes(m.currency)) {
          currencies.push(m.currency);
        }
      }
    }
    currencies.sort();
    draw("chart-margin", {
      type: "bar",
      data: {
        labels: data.by_customer.map((r) => r.name),
        // One series per currency: bars of different currencies are never stacked.
        datasets: currencies.map((currency) => ({
          label: "margin " + currency,
          data: data.by_customer.map((r) => {
            const found = r.margins.find((m) => m.currency === currency);
            return found ? Number(found.amount) : null;
          }),
        })),
      },
    });

    for (const table of root.querySelectorAll("table[data-group]")) {
      fillTable(table, data[table.dataset.group] || []);
    }
    fillSecurity(data.security);
    status.textContent =
      "From " + data.since.slice(0, 16).replace("T", " ") +
      " to " + data.until.slice(0, 16).replace("T", " ") + " UTC.";
  }

  async function load() {
    try {
      const response = await fetch(root.dataset.url, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (!response.ok) {
        throw new Error("the server answered " + response.status);
      }
      render(await response.json());
      status.classList.remove("error");
    } catch (error) {
      status.textContent = "Could not load the data: " + error.message;
      status.classList.add("error");
    }
  }

  const choice = document.getElementById("dashboard-period-choice");
  if (choice) {
    choice.addEventListener("change", () => choice.form.submit());
  }
  load();
  // Refresh once a minute while the page is open; the timer stops with the page.
  window.setInterval(load, 60000);
})();
