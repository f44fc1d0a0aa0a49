// Pay a top-up by card with Stripe Elements. The card fields belong to Stripe.js: this
// page only ever sees a one-use token, which the confirm call turns into the payment.
// When the issuer asks for authentication (3-D Secure), Stripe.js runs it, and the
// confirm call is made again to credit the tokens.
(function () {
  "use strict";
  var form = document.getElementById("card-form");
  if (!form) return;
  var button = document.getElementById("card-pay");
  var errors = document.getElementById("card-errors");

  function showError(message) {
    errors.textContent = message;
    errors.hidden = !message;
  }

  if (typeof window.Stripe !== "function") {
    showError("Card payments are unavailable right now (Stripe.js did not load). " +
              "Try again in a moment.");
    button.disabled = true;
    return;
  }
  var stripe = window.Stripe(form.dataset.publishableKey);
  var card = stripe.elements().create("card");
  card.mount("#card-element");

  function confirmTopup(body) {
    return fetch(form.dataset.confirmUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "X-CSRFToken": form.querySelector("[name=csrfmiddlewaretoken]").value,
      },
      body: JSON.stringify(body),
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          var error = data.error || {};
          throw new Error(error.message || "The payment could not be confirmed.");
        }
        return data;
      });
    });
  }

  function finish() {
    // The page itself tells how the top-up ended (and sends the buyer to the wallet).
    window.location.assign(form.dataset.doneUrl);
  }

  async function pay() {
    var made = await stripe.createToken(card);
    if (made.error) throw new Error(made.error.message || "Check the card details.");
    var topup = await confirmTopup({card_token: made.token.id});
    if (topup.payment_status === "requires_action") {
      var authenticated = await stripe.confirmCardPayment(topup.client_secret);
      if (authenticated.error) {
        throw new Error(authenticated.error.message ||
                        "The card's authentication failed; nothing was charged.");
      }
      topup = await confirmTopup({});
    }
    if (topup.status !== "succeeded" && topup.payment_status !== "processing") {
      throw new Error(topup.failure_message || "The payment did not go through.");
    }
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (button.disabled) return;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    showError("");
    pay().then(finish, function (error) {
      showError(error.message + " Try again or use another card.");
      button.disabled = false;
      button.removeAttribute("aria-busy");
    });
  });
})();
