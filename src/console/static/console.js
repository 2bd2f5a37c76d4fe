// authledger console: progressive enhancement only (the pages work without it).
// Served as a file: the Content-Security-Policy allows no inline script.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button.copy[data-copy]")) {
    button.addEventListener("click", async () => {
      const field = document.getElementById(button.dataset.copy);
      if (!field) return;
      field.select();
      try {
        await navigator.clipboard.writeText(field.value);
        button.textContent = "Copied";
      } catch (_) {
        button.textContent = "Press Ctrl+C";
      }
    });
  }
});

// The provider picker: typing in the search narrows the provider list; choosing a provider
// fills the OAuth2 form from the catalog (without script, the picker's GET form does both).
document.addEventListener("DOMContentLoaded", () => {
  const search = document.getElementById("provider-search");
  const choice = document.getElementById("provider-choice");
  const form = document.getElementById("create-oauth2");
  if (!search || !choice || !form) return;
  const set = (id, value) => {
    const field = document.getElementById(id);
    if (field) field.value = value;
  };
  search.addEventListener("input", () => {
    const q = search.value.trim().toLowerCase();
    for (const option of choice.options) {
      if (option.value === "custom") continue;
      option.hidden = q !== "" && !option.textContent.toLowerCase().includes(q)
        && !option.value.includes(q);
    }
    const match = [...choice.options].find((o) => !o.hidden && o.value !== "custom"
      && o.textContent.toLowerCase() === q);
    if (match) {
      choice.value = match.value;
      choice.dispatchEvent(new Event("change"));
    }
  });
  choice.addEventListener("change", () => {
    const o = choice.selectedOptions[0];
    if (!o) return;
    const d = o.dataset;
    set("oauth-provider", o.value);
    set("oauth-name", d.name || "");
    set("authorization_url", d.authorizationUrl || "");
    set("token_url", d.tokenUrl || "");
    set("revocation_url", d.revocationUrl || "");
    set("scopes", d.scopes || "");
    set("client_auth_method", d.clientAuthMethod || "client_secret_basic");
    const name = document.getElementById("oauth-provider-name");
    if (name) name.textContent = o.value === "custom" ? "another provider" : o.value;
    const available = document.getElementById("scopes-available");
    if (available) available.textContent = d.allScopes ? "Available: " + d.allScopes : "";
  });
});
