// The order page's live status: read status.json every 2 seconds and update the page, no framework needed.
(function () {
  "use strict";
  var card = document.getElementById("status-card");
  if (!card) { return; }
  var url = card.dataset.statusUrl;
  var TEXT = {
    waiting: "Waiting for the payment at Alipay. Nothing to do here: this page changes as soon as Alipay tells the shop.",
    paid: "Paid, thank you! Alipay's notification arrived and was verified; your order is being packed.",
    paid_in_store: "Paid at the counter: Alipay confirmed the payment.",
    partly_refunded: "Paid; part of the amount has been refunded to the buyer's Alipay account.",
    refunded: "The whole amount has been refunded.",
    reversed: "The payment was reversed: the buyer got the full amount back.",
    closed: "The payment was not completed; nothing was charged.",
    failed: "The payment could not be made.",
    "new": "This order has not been sent to Alipay."
  };

  // Once the payment is no longer waiting, "Alipay is confirming your payment" is stale: the card says it all.
  function settled(status) {
    if (status === "waiting") { return; }
    document.querySelectorAll(".messages li.info").forEach(function (item) { item.hidden = true; });
  }

  function setText(id, value) {
    var element = document.getElementById(id);
    if (element && element.textContent !== value) { element.textContent = value; }
  }

  function cell(row, text, className) {
    var td = document.createElement("td");
    td.textContent = text;
    if (className) { td.className = className; }
    row.appendChild(td);
  }

  function render(data) {
    var pill = document.getElementById("order-status");
    if (pill.dataset.status !== data.status) {
      pill.dataset.status = data.status;
      card.className = "status-card tone-" + data.tone + " changed";
      var cont = document.getElementById("continue-payment");
      if (cont && data.status !== "waiting") { cont.hidden = true; }
      settled(data.status);
    }
    setText("order-status", data.label);
    var text = data.status === "paid" && data.in_store ? TEXT.paid_in_store : TEXT[data.status];
    setText("status-text", text || "");
    var problem = document.getElementById("problem");
    problem.hidden = !data.problem;
    setText("problem", data.problem || "");
    if (data.trade) {
      setText("trade-no", data.trade.trade_no || "—");
      setText("buyer", data.trade.buyer || "");
      document.getElementById("buyer").hidden = document.getElementById("buyer-label").hidden = !data.trade.buyer;
      setText("refunded", data.trade.refunded + " " + data.currency);
    }
    var body = document.getElementById("refunds");
    if (body) {
      body.replaceChildren();
      data.refunds.forEach(function (refund) {
        var row = document.createElement("tr");
        cell(row, refund.kind_label);
        cell(row, refund.amount + " " + data.currency, "num");
        cell(row, refund.status_label);
        cell(row, refund.reason);
        body.appendChild(row);
      });
      document.getElementById("refunds-card").hidden = data.refunds.length === 0;
    }
    setText("live", data.final ? "" : "Live: checking every 2 seconds");
  }

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, cache: "no-store", credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (data) { render(data); }
        // Keep listening after payment too: refunds made in the admin show up here.
        if (!data || !data.final) { window.setTimeout(poll, 2000); }
      })
      .catch(function () { window.setTimeout(poll, 2000); });
  }

  settled(document.getElementById("order-status").dataset.status);
  if (card.dataset.final !== "true") { window.setTimeout(poll, 2000); }
}());
