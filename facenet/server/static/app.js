// facenet web page: plain JS over the /api/v1 JSON API. No build step.
"use strict";

const API = "/api/v1";
const $ = (id) => document.getElementById(id);

function apiKey() {
  return $("api-key").value.trim();
}

async function call(method, path, body) {
  // A header no HTML form can send: the server requires it (or a JSON body) on gallery changes.
  const headers = { "X-Requested-With": "facenet" };
  if (apiKey()) headers["X-API-Key"] = apiKey();
  if (body && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(API + path, { method, headers, body });
  } catch (err) {
    // fetch rejects only when no answer came: say so, not the browser's bare "Failed to fetch"
    throw new Error(`cannot reach the server (is it running?): ${err.message}`);
  }
  const type = response.headers.get("Content-Type") || "";
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    let code = null;
    if (type.includes("json")) {
      const data = await response.json();
      if (data.error) ({ message, code } = data.error);
    }
    const error = new Error(message);
    error.status = response.status;
    error.code = code;
    throw error;
  }
  return type.includes("json") ? response.json() : response.blob();
}

function status(id, text, isError = false) {
  const el = $(id);
  el.textContent = text;
  el.classList.toggle("error", isError);
}

// A form's submit handler that keeps the form's buttons disabled while `work` runs, so a double
// click (or a click while a request runs) sends one request, not two.
function whileBusy(work) {
  return async (event) => {
    event.preventDefault();
    const buttons = [...event.currentTarget.querySelectorAll("button")].filter((b) => !b.disabled);
    for (const button of buttons) button.disabled = true;
    try {
      await work(event);
    } finally {
      for (const button of buttons) button.disabled = false;
    }
  };
}

// Show a photo with face boxes positioned in percent of its size (so they follow any scaling).
function showPhoto(figure, file, result, faces, decorate) {
  figure.replaceChildren();
  const img = document.createElement("img");
  img.src = URL.createObjectURL(file);
  img.alt = file.name;
  figure.append(img);
  faces.forEach((face, i) => {
    const [x1, y1, x2, y2] = face.box;
    const box = document.createElement("div");
    box.className = "box";
    box.style.left = `${(100 * x1) / result.width}%`;
    box.style.top = `${(100 * y1) / result.height}%`;
    box.style.width = `${(100 * (x2 - x1)) / result.width}%`;
    box.style.height = `${(100 * (y2 - y1)) / result.height}%`;
    if (decorate) decorate(box, face, i);
    figure.append(box);
  });
}

function label(box, text) {
  const tag = document.createElement("span");
  tag.className = "label";
  tag.textContent = text;
  box.append(tag);
}

// -- tabs ---------------------------------------------------------------------------------------

for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => {
    for (const other of document.querySelectorAll(".tab")) other.classList.toggle("active", other === tab);
    for (const panel of document.querySelectorAll(".panel")) panel.hidden = panel.id !== tab.dataset.tab;
    if (tab.dataset.tab === "gallery") { loadPeople(); watchMigration(); }
  });
}

// -- verify -------------------------------------------------------------------------------------

$("verify-form").addEventListener("submit", whileBusy(async (event) => {
  const a = $("verify-a").files[0];
  const b = $("verify-b").files[0];
  const form = new FormData();
  form.append("image1", a);
  form.append("image2", b);
  status("verify-status", "comparing…");
  $("verify-result").hidden = true;
  try {
    const r = await call("POST", "/verify", form);
    [[a, "verify-photo-a"], [b, "verify-photo-b"]].forEach(([file, id], k) => {
      const image = r.images[k];
      showPhoto($(id), file, image, image.faces, (box, face, i) => {
        if (i === image.chosen) box.classList.add("chosen");
      });
    });
    const decision = $("verify-decision");
    decision.textContent = r.same ? "Same person" : "Different people";
    decision.dataset.same = String(r.same);
    $("verify-distance").textContent = r.distance.toFixed(4);
    $("verify-threshold").textContent = r.threshold.toFixed(4);
    $("verify-result").hidden = false;
    status("verify-status", "");
  } catch (err) {
    status("verify-status", err.message, true);
  }
}));

// -- identify -----------------------------------------------------------------------------------

$("identify-form").addEventListener("submit", whileBusy(async (event) => {
  const file = $("identify-image").files[0];
  const form = new FormData();
  form.append("image", file);
  status("identify-status", "identifying…");
  $("identify-result").hidden = true;
  try {
    const r = await call("POST", "/identify", form);
    showPhoto($("identify-photo"), file, r, r.faces, (box, face) => {
      box.classList.add(face.name === "unknown" ? "unknown" : "known");
      label(box, face.name);
    });
    const list = $("identify-list");
    list.replaceChildren(
      ...r.faces.map((face, i) => {
        const li = document.createElement("li");
        const nearest = face.matches.length ? face.matches[0] : null;
        let detail = "empty gallery";
        if (nearest && face.name === "unknown") {
          detail = `nearest ${nearest.name}, distance ${nearest.distance.toFixed(4)} > threshold ${r.threshold.toFixed(4)}`;
        } else if (nearest) {
          detail = `distance ${face.distance.toFixed(4)}`;
        }
        li.textContent = `face ${i + 1}: ${face.name} (${detail})`;
        return li;
      }),
    );
    $("identify-result").hidden = false;
    status("identify-status", r.faces.length ? "" : "no face found");
  } catch (err) {
    status("identify-status", err.message, true);
  }
}));

// -- gallery ------------------------------------------------------------------------------------

async function thumbnail(faceId) {
  const img = document.createElement("img");
  img.alt = `face ${faceId}`;
  try {
    img.src = URL.createObjectURL(await call("GET", `/faces/${faceId}/thumbnail`));
  } catch (err) {
    img.title = err.message;
  }
  return img;
}

async function loadPeople() {
  try {
    const people = await call("GET", "/people");
    const cards = await Promise.all(people.map(personCard));
    $("people").replaceChildren(...cards);
    if (!people.length) status("gallery-status", "the gallery is empty: enrol someone");
  } catch (err) {
    status("gallery-status", err.message, true);
  }
}

async function personCard(person) {
  const card = document.createElement("div");
  card.className = "person";
  card.dataset.name = person.name;
  const title = document.createElement("h3");
  title.textContent = person.name;
  const count = document.createElement("div");
  count.className = "muted";
  count.textContent = `${person.faces} face${person.faces === 1 ? "" : "s"}`;
  const thumbs = document.createElement("div");
  thumbs.className = "thumbs";
  thumbs.append(...(await Promise.all(person.face_ids.slice(0, 12).map(thumbnail))));
  const actions = document.createElement("div");
  actions.className = "actions";
  const rename = document.createElement("button");
  rename.type = "button";
  rename.textContent = "Rename";
  rename.addEventListener("click", async () => {
    const name = prompt(`New name for ${person.name}`, person.name);
    if (!name || name === person.name) return;
    try {
      await call("PATCH", `/people/${person.id}`, { name });
      status("gallery-status", `renamed ${person.name} to ${name}`);
      loadPeople();
    } catch (err) {
      status("gallery-status", err.message, true);
    }
  });
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "remove";
  remove.textContent = "Remove";
  remove.addEventListener("click", async () => {
    if (!confirm(`Remove ${person.name} and their ${person.faces} face(s)?`)) return;
    try {
      await call("DELETE", `/people/${person.id}`);
      status("gallery-status", `removed ${person.name}`);
      loadPeople();
    } catch (err) {
      status("gallery-status", err.message, true);
    }
  });
  actions.append(rename, remove);
  card.append(title, count, thumbs, actions);
  return card;
}

$("enroll-form").addEventListener("submit", whileBusy(async (event) => {
  const form = new FormData();
  form.append("name", $("enroll-name").value);
  for (const file of $("enroll-images").files) form.append("images", file);
  status("gallery-status", "enrolling…");
  try {
    const r = await call("POST", "/people", form);
    const skipped = r.skipped.map((s) => `${s.filename}: ${s.reason}`).join("; ");
    status(
      "gallery-status",
      `enrolled ${r.enrolled.length} face(s) of ${r.person.name}` + (skipped ? `; skipped ${skipped}` : ""),
    );
    event.target.reset();
    loadPeople();
  } catch (err) {
    status("gallery-status", err.message, true);
  }
}));

// -- cluster ------------------------------------------------------------------------------------

async function faceCanvas(bitmap, box) {
  const [x1, y1, x2, y2] = box;
  const side = Math.max(x2 - x1, y2 - y1) * 1.3;
  const cx = (x1 + x2) / 2;
  const cy = (y1 + y2) / 2;
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 96;
  canvas.getContext("2d").drawImage(bitmap, cx - side / 2, cy - side / 2, side, side, 0, 0, 96, 96);
  return canvas;
}

$("cluster-form").addEventListener("submit", whileBusy(async (event) => {
  const files = [...$("cluster-images").files];
  const form = new FormData();
  for (const file of files) form.append("images", file);
  status("cluster-status", "clustering…");
  $("clusters").replaceChildren();
  try {
    const r = await call("POST", "/cluster", form);
    const bitmaps = await Promise.all(files.map((f) => createImageBitmap(f)));
    const groups = [];
    for (const group of r.clusters) {
      const row = document.createElement("div");
      row.className = "group";
      const title = document.createElement("h3");
      title.textContent = group.label < 0 ? "unmatched" : `person ${group.label + 1}`;
      row.append(title);
      for (const index of group.faces) {
        const face = r.faces[index];
        const canvas = await faceCanvas(bitmaps[face.image], face.box);
        canvas.title = r.images[face.image].filename;
        row.append(canvas);
      }
      groups.push(row);
    }
    $("clusters").replaceChildren(...groups);
    status("cluster-status", `${r.faces.length} face(s) in ${r.images.length} photo(s): ${r.clusters.length} group(s)`);
  } catch (err) {
    status("cluster-status", err.message, true);
  }
}));

// -- start --------------------------------------------------------------------------------------

$("api-key").value = sessionStorage.getItem("facenet-api-key") || "";
$("api-key").addEventListener("change", () => {
  sessionStorage.setItem("facenet-api-key", apiKey());
  loadModel();
  if (!$("gallery").hidden) {
    // the open tab loads again with the new key (not the old key's error over an empty list)
    status("gallery-status", "");
    loadPeople();
    watchMigration();
  }
});

// -- model migration (a background job: POST starts it, GET reports it) -----------------------

function migrationText(job) {
  if (job.state === "idle") return "";
  if (job.state === "running") return `migrating to ${job.model || "the previous model"}: ${job.done} of ${job.total || "?"} faces`;
  if (job.state !== "done") return `migration ${job.state}: ${job.error}`;
  const r = job.report;
  const what = job.dry_run ? "dry run (nothing switched)" : `switched to ${r.new_model}`;
  return `${what}: nearest person changes for ${r.nearest_person_changed} of ${r.compared} faces, ` +
    `${r.candidate_wrong_merges} candidate wrong merges, ${r.candidate_duplicates} candidate duplicates, ` +
    `${r.reembedded_from_crop} from stored crops, ${r.flagged} flagged`;
}

async function watchMigration() {
  try {
    const job = await call("GET", "/gallery/migrate");
    status("migrate-status", migrationText(job), job.state === "failed");
    if (job.state === "running") setTimeout(watchMigration, 1000);
    else if (job.state === "done" && !job.dry_run) { loadModel(); loadPeople(); }
  } catch (err) {
    status("migrate-status", err.message, true);
  }
}

$("migrate-form").addEventListener("submit", whileBusy(async () => {
  try {
    await call("POST", "/gallery/migrate", { model: $("migrate-model").value.trim(), dry_run: $("migrate-dry-run").checked });
    watchMigration();
  } catch (err) {
    status("migrate-status", err.message, true);
  }
}));

async function loadModel() {
  try {
    const m = await call("GET", "/model");
    $("model-info").textContent =
      `${m.name}: ${m.backbone}, ${m.input_size} px, ${m.embedding_size}-d, threshold ${m.threshold.toFixed(3)}` +
      (m.calibrated ? "" : " (uncalibrated)");
  } catch (err) {
    $("model-info").textContent = `model: ${err.message}`;
  }
}
loadModel();
