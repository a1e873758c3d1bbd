// The dashboard's only script: the overview's and a batch's refresh, confirmations, the
// editor, and the upload of a batch file.
"use strict";

// Forms with data-confirm ask first.
document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

// A part of a page with data-refresh is fetched again every 5 s while the page is visible,
// until it holds an element marked data-finished (a batch that has ended).
function refresh(part) {
  const every = 5000;
  const finished = () => part.querySelector("[data-finished]") !== null;
  if (finished()) return;
  const tick = async () => {
    if (!document.hidden) {
      try {
        const response = await fetch(part.dataset.refresh, { credentials: "same-origin" });
        if (response.redirected || response.status === 401) {
          window.location = "/ui/login";
          return;
        }
        if (response.ok) part.innerHTML = await response.text();
        if (finished()) return;
      } catch (_) {
        // The server is away for a moment; the next tick tries again.
      }
    }
    window.setTimeout(tick, every);
  };
  window.setTimeout(tick, every);
}

// The editor: the form becomes a definition, checked by the server's preview as you type.
function editor(form) {
  const csrf = form.dataset.csrf;
  const rows = document.getElementById("inputs");
  const template = document.getElementById("input-row");
  const loaded = JSON.parse(document.getElementById("definition").value);
  const text = ["id", "name", "status", "model", "backoff_initial", "backoff_max", "max_wait",
    "priority", "system", "prompt", "title"];
  const numbers = ["temperature", "max_tokens", "max_attempts"];

  for (const key of text.concat(numbers)) {
    if (loaded[key] !== undefined && loaded[key] !== null) form.elements[key].value = loaded[key];
  }
  form.elements.provider.value = loaded.providers ? loaded.providers.join(", ") : (loaded.provider || "");

  function addRow(input) {
    const row = template.content.firstElementChild.cloneNode(true);
    const field = (name) => row.querySelector(`[data-field="${name}"]`);
    field("name").value = input.name || "";
    field("input_type").value = input.input_type || "text";
    field("required").checked = Boolean(input.required);
    field("description").value = input.description || "";
    field("options").value = input.options ? JSON.stringify(input.options) : "";
    row.querySelector(".remove").addEventListener("click", () => { row.remove(); changed(); });
    rows.appendChild(row);
  }
  (loaded.inputs || []).forEach(addRow);
  document.getElementById("add-input").addEventListener("click", () => { addRow({}); changed(); });

  // The definition the form describes, and the problems only the browser can see (options
  // that are not JSON); everything else is the server's to say.
  function build() {
    const definition = {};
    const local = [];
    for (const key of text) {
      const value = form.elements[key].value;
      if (value.trim() !== "") definition[key] = value;
    }
    for (const key of numbers) {
      const value = form.elements[key].value.trim();
      if (value !== "") definition[key] = Number.isNaN(Number(value)) ? value : Number(value);
    }
    const providers = form.elements.provider.value.split(",").map((p) => p.trim()).filter(Boolean);
    if (providers.length === 1) definition.provider = providers[0];
    if (providers.length > 1) definition.providers = providers;
    const samples = [];
    definition.inputs = Array.from(rows.children).map((row, i) => {
      const field = (name) => row.querySelector(`[data-field="${name}"]`);
      const input = {
        name: field("name").value,
        input_type: field("input_type").value,
        required: field("required").checked,
      };
      if (field("description").value.trim() !== "") input.description = field("description").value;
      const options = field("options").value.trim();
      if (options !== "") {
        try {
          input.options = JSON.parse(options);
        } catch (_) {
          local.push(`inputs[${i}].options: not JSON`);
        }
      }
      let values = field("sample").value.split("\n").map((v) => v.trim()).filter(Boolean);
      if (values.length === 0 && input.required) values = stand_in(input);
      if (input.name !== "" && values.length > 0) samples.push({ id: input.name, value: values });
      return input;
    });
    return { definition, samples, local };
  }

  // A required input given no sample still previews: a text input as ‹its name›, a
  // dropdown as its first choice (a file cannot be made up: its sample must be a file id).
  function stand_in(input) {
    if (input.input_type === "text") return [`‹${input.name}›`];
    const list = input.options && input.options.list;
    if (input.input_type === "dropdown" && Array.isArray(list) && list.length) return [String(list[0])];
    return [];
  }

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    if (response.redirected) {
      window.location = "/ui/login";
      return null;
    }
    const type = response.headers.get("content-type") || "";
    const answer = type.includes("json") ? await response.json() : { errors: [{ description: `${response.status} ${response.statusText}` }] };
    return { answer };
  }

  const status = document.getElementById("status");
  const problems = document.getElementById("problems");
  const save = document.getElementById("save");
  const preview = document.getElementById("preview");
  const answer = document.getElementById("answer");

  function showProblems(list) {
    problems.replaceChildren(...list.map((p) => {
      const item = document.createElement("li");
      item.textContent = p;
      return item;
    }));
    status.textContent = list.length ? "Not valid yet:" : "Valid.";
    // Only a definition without problems can be saved.
    save.disabled = list.length > 0;
  }

  // The problems of an answer: a definition not valid yet ({problems}), or an error.
  function problemsOf(result) {
    if (result.answer.problems) return result.answer.problems;
    return (result.answer.errors || []).map((e) => e.description);
  }

  let sent = 0;
  async function check(run) {
    const mine = ++sent;
    const { definition, samples, local } = build();
    if (local.length) {
      showProblems(local);
      preview.hidden = true;
      return;
    }
    status.textContent = run ? "Running…" : "Checking…";
    const result = await post("/ui/editor/preview", { definition, inputs: samples, run });
    if (!result || mine !== sent) return;
    const shown = result.answer.preview;
    if (!shown) {
      showProblems(problemsOf(result));
      preview.hidden = true;
      answer.hidden = true;
      return;
    }
    showProblems([]);
    document.getElementById("preview-system").textContent = shown.system || "—";
    document.getElementById("preview-user").textContent = shown.user;
    document.getElementById("preview-title").textContent = shown.title || "—";
    preview.hidden = false;
    if (run && shown.answer) {
      document.getElementById("answer-text").textContent = shown.answer.suggestion;
      answer.hidden = false;
    }
  }

  let timer = null;
  function changed() {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => check(false), 300);
  }
  form.addEventListener("input", changed);
  form.addEventListener("change", changed);
  form.addEventListener("submit", (event) => event.preventDefault());
  document.getElementById("try").addEventListener("click", () => check(true));
  save.addEventListener("click", async () => {
    const { definition, local } = build();
    if (local.length) return showProblems(local);
    status.textContent = "Saving…";
    const id = form.dataset.id || null;
    const result = await post("/ui/editor/save", { id, definition });
    if (!result) return;
    if (result.answer.location) {
      window.location = result.answer.location;
    } else {
      showProblems(problemsOf(result));
    }
  });
  check(false);
}

// A batch file: sent as the Files API takes it (the body is the file, named by
// Content-Disposition), then its check is shown; nothing starts until "Start batch".
function upload(form) {
  const status = document.getElementById("upload-status");
  const problems = document.getElementById("upload-problems");
  const button = form.querySelector("button[type=submit]");
  const show = (list) => problems.replaceChildren(...list.map((p) => {
    const item = document.createElement("li");
    item.textContent = p;
    return item;
  }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = form.elements.file.files[0];
    if (!file) return show(["Choose a .csv or .jsonl file first."]);
    button.disabled = true;
    show([]);
    status.textContent = `Uploading ${file.name}…`;
    try {
      const response = await fetch("/ui/batches/upload", {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "X-CSRF-Token": form.dataset.csrf,
          "Content-Disposition": `attachment; filename*=utf-8''${encodeURIComponent(file.name)}`,
        },
        body: file,
      });
      if (response.redirected) {
        window.location = "/ui/login";
        return;
      }
      const type = response.headers.get("content-type") || "";
      const answer = type.includes("json") ? await response.json() : {};
      if (response.ok && answer.id) {
        const application = encodeURIComponent(form.elements.application.value);
        window.location = `/ui/batches/new?application=${application}&file_id=${encodeURIComponent(answer.id)}`;
        return;
      }
      const list = (answer.errors || []).map((e) => e.description);
      show(list.length ? list : [`${response.status} ${response.statusText}`]);
    } catch (_) {
      show(["The server could not be reached; try again."]);
    }
    status.textContent = "";
    button.disabled = false;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-refresh]").forEach(refresh);
  const form = document.getElementById("editor");
  if (form) editor(form);
  const batchFile = document.getElementById("batch-upload");
  if (batchFile) upload(batchFile);
});
