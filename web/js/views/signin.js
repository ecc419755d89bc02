// @ts-check
// Sign in: a username and a password for a token kept in this tab only.

import { ApiError, signIn } from "../api.js";
import { h } from "../dom.js";

/** @param {HTMLElement} root @param {Record<string, string>} params */
export function mount(root, params) {
  const error = h("p", { class: "form-error", role: "alert" });
  const username = h("input", { name: "username", autocomplete: "username", required: true });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const submit = /** @type {HTMLButtonElement} */ (h("button", { type: "submit", class: "primary", text: "Sign in" }));
  const form = h(
    "form",
    { "aria-label": "Sign in" },
    h("label", {}, "Username", username),
    h("label", {}, "Password", password),
    submit,
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    error.textContent = "";
    try {
      await signIn(/** @type {HTMLInputElement} */ (username).value, /** @type {HTMLInputElement} */ (password).value);
      location.hash = `#${params.next && !params.next.startsWith("/signin") ? params.next : "/dags"}`;
    } catch (e) {
      error.textContent = e instanceof ApiError ? e.detail : String(e);
      submit.disabled = false;
    }
  });
  root.append(
    h(
      "section",
      { class: "signin card" },
      h("h1", { text: "Sign in to Sluice" }),
      form,
      h("p", { class: "muted", text: "sluice standalone prints the admin password at its first start." }),
    ),
  );
  username.focus();
  return { unmount() {} };
}
