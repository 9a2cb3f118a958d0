// Passkeys (WebAuthn) for Portcullis pages. Served as a file so the Content-Security-Policy
// needs no inline script. A form marked data-passkey="create" or "get" carries its options
// (JSON from the server) in data-passkey-options; the browser's answer goes back as JSON in
// the form's hidden "credential" field, posted with the form's CSRF token.
"use strict";

(() => {
  if (!window.PublicKeyCredential || !navigator.credentials) {
    return; // the forms stay hidden: password sign-in works as before
  }

  const toBytes = (text) => {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  };

  const toText = (buffer) => {
    let binary = "";
    for (const byte of new Uint8Array(buffer)) {
      binary += String.fromCharCode(byte);
    }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  };

  const withBytes = (descriptors) =>
    (descriptors || []).map((d) => ({ ...d, id: toBytes(d.id) }));

  const creationOptions = (json) => ({
    ...json,
    challenge: toBytes(json.challenge),
    user: { ...json.user, id: toBytes(json.user.id) },
    excludeCredentials: withBytes(json.excludeCredentials),
  });

  const requestOptions = (json) => ({
    ...json,
    challenge: toBytes(json.challenge),
    allowCredentials: withBytes(json.allowCredentials),
  });

  const common = (credential) => ({
    id: credential.id,
    rawId: toText(credential.rawId),
    type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment || null,
    clientExtensionResults: credential.getClientExtensionResults(),
  });

  const registrationJSON = (credential) => ({
    ...common(credential),
    response: {
      clientDataJSON: toText(credential.response.clientDataJSON),
      attestationObject: toText(credential.response.attestationObject),
      transports: credential.response.getTransports ? credential.response.getTransports() : [],
    },
  });

  const assertionJSON = (credential) => ({
    ...common(credential),
    response: {
      clientDataJSON: toText(credential.response.clientDataJSON),
      authenticatorData: toText(credential.response.authenticatorData),
      signature: toText(credential.response.signature),
      userHandle: credential.response.userHandle
        ? toText(credential.response.userHandle)
        : null,
    },
  });

  const MESSAGES = {
    NotAllowedError: "The passkey prompt was closed or timed out. Try again.",
    InvalidStateError: "This device already holds a passkey for your account.",
    SecurityError: "Passkeys work only at this site's own address (not an IP address).",
    default: "This browser could not use a passkey here.",
  };

  const showError = (form, message) => {
    const box = form.querySelector(".passkey-error");
    if (box) {
      box.textContent = message;
      box.hidden = false;
    }
  };

  const send = (form, answer) => {
    form.querySelector("input[name=credential]").value = JSON.stringify(answer);
    const remember = form.querySelector("input[name=remember]");
    const box = document.querySelector("input[type=checkbox][name=remember]");
    if (remember && box) {
      remember.value = box.checked ? "y" : "";
    }
    form.submit(); // a plain POST: the server answers with a redirect or the page again
  };

  const setUp = (form) => {
    const options = JSON.parse(form.dataset.passkeyOptions);
    const mode = form.dataset.passkey;
    let waiting = null; // the conditional (autofill) request, if one is open

    const ask = async (mediation) => {
      if (mode === "create") {
        const credential = await navigator.credentials.create({
          publicKey: creationOptions(options),
        });
        return registrationJSON(credential);
      }
      const request = { publicKey: requestOptions(options) };
      if (mediation) {
        waiting = new AbortController();
        request.mediation = mediation;
        request.signal = waiting.signal;
      }
      const credential = await navigator.credentials.get(request);
      return assertionJSON(credential);
    };

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (mode === "create" && !form.reportValidity()) {
        return;
      }
      if (waiting) {
        waiting.abort();
        waiting = null;
      }
      try {
        send(form, await ask(null));
      } catch (error) {
        showError(form, MESSAGES[error && error.name] || MESSAGES.default);
        offerInAutofill(); // the button's prompt is closed: autofill may offer it again
      }
    });

    // Conditional UI: the username field's autofill lists the passkeys (login page only).
    const offerInAutofill = () => {
      if (form.dataset.passkeyConditional === undefined || waiting) {
        return;
      }
      PublicKeyCredential.isConditionalMediationAvailable?.().then((available) => {
        if (!available) {
          return;
        }
        ask("conditional").then(
          (answer) => send(form, answer),
          () => {
            waiting = null; // aborted for the button, or dismissed: nothing to say
          }
        );
      });
    };
    offerInAutofill();
    form.hidden = false;
  };

  document.querySelectorAll("form[data-passkey]").forEach(setUp);
})();
