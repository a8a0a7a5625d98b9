// The account page's API tokens: create (the secret is shown once, the list gains its row)
// and revoke (the row goes), without reloading the page.
(function () {
  const form = document.getElementById("new-token");
  const headers = {"Content-Type": "application/json", "X-CSRF-Token": form.dataset.csrfToken};
  const list = document.querySelector("table.tokens tbody");

  // As the server's `datetime` filter: "2026-12-07 03:31 UTC".
  const when = (seconds) => new Date(seconds * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC";

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text;  // text, never HTML: the name is the person's own input
    return td;
  }

  function showEmptyIfNone() {
    const empty = list.querySelector("tr.empty");
    if (empty) empty.hidden = list.querySelector("tr[data-token]") !== null;
  }

  function revokeButton(id) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "button small revoke-token";
    button.dataset.id = id;
    button.textContent = "Revoke";
    button.addEventListener("click", () => revoke(button));
    return button;
  }

  async function revoke(button) {
    const response = await fetch("/api/tokens/" + encodeURIComponent(button.dataset.id), {method: "DELETE", headers});
    if (!response.ok && response.status !== 404) {
      const data = await response.json().catch(() => ({message: "The token could not be revoked."}));
      window.alert(data.hint ? `${data.message} ${data.hint}` : data.message);
      return;
    }
    button.closest("tr").remove();
    showEmptyIfNone();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = new FormData(form);
    const body = {
      name: fields.get("name"),
      scopes: fields.getAll("scopes"),
      expires_in: Number(fields.get("expires_in")),
    };
    const response = await fetch("/api/tokens", {method: "POST", headers, body: JSON.stringify(body)});
    const data = await response.json();
    if (!response.ok) {
      window.alert(data.hint ? `${data.message} ${data.hint}` : data.message);
      return;
    }
    document.getElementById("token-secret").textContent = data.token;
    document.getElementById("token-created").hidden = false;
    const row = document.createElement("tr");
    row.dataset.token = data.id;
    const actions = document.createElement("td");
    actions.append(revokeButton(data.id));
    row.append(
      cell(data.name), cell(data.scopes.join(", ")), cell(when(Date.now() / 1000)),
      cell("never"), cell(when(data.expires_at)), actions,
    );
    list.prepend(row);
    showEmptyIfNone();
    form.reset();
  });

  document.getElementById("copy-token").addEventListener("click", () => {
    navigator.clipboard.writeText(document.getElementById("token-secret").textContent);
  });

  for (const button of document.querySelectorAll(".revoke-token")) {
    button.addEventListener("click", () => revoke(button));
  }
})();
