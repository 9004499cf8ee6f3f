// The People tab: the photo library's people and unnamed clusters (/api/v1/library).
// Plain JS over app.js's `call`, `status` and `$`; names are shown with textContent only.
// Everything else stays inside this function: app.js's globals are not shadowed.
"use strict";

(() => {
  const LIB = "/library";
  const libState = { person: null, selectedPeople: new Set(), selectedFaces: new Set() };

  function libStatus(text, isError = false) {
    status("lib-status", text, isError);
  }

  function plural(n, word, many = `${word}s`) {
    return `${n} ${n === 1 ? word : many}`;
  }

  function personTitle(person) {
    return person.name === null ? "unnamed" : person.name;
  }

  // A face thumbnail as an <img>: fetched with the page's headers (API key), shown from a blob.
  function libThumbnail(faceId) {
    const img = document.createElement("img");
    img.alt = `face ${faceId}`;
    img.dataset.faceId = String(faceId);
    if (faceId === null || faceId === undefined) return img;
    call("GET", `${LIB}/faces/${faceId}/thumbnail`)
      .then((blob) => {
        const url = URL.createObjectURL(blob);
        img.addEventListener("load", () => URL.revokeObjectURL(url), { once: true });
        img.src = url;
      })
      .catch((err) => { img.title = err.message; });
    return img;
  }

  function button(text, className, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    if (className) b.className = className;
    b.addEventListener("click", onClick);
    return b;
  }

  // Run a change, refresh what is shown, then report it; an error goes to the status line.
  async function libChange(work) {
    try {
      const message = await work();
      await (libState.person === null ? loadLibrary() : openPerson(libState.person));
      libStatus(message || "");
    } catch (err) {
      libStatus(err.message, true);
    }
  }

  // -- overview: the grid of people and clusters --------------------------------------------------

  async function loadLibrary() {
    libState.person = null;
    libState.selectedPeople.clear();
    $("lib-person").hidden = true;
    $("lib-overview").hidden = false;
    updateMerge();
    try {
      const [counts, people] = await Promise.all([call("GET", LIB), call("GET", `${LIB}/people`)]);
      $("lib-summary").textContent =
        `${plural(counts.named, "named person", "named people")}, ${plural(counts.clusters, "unnamed cluster")}, ` +
        `${plural(counts.faces, "face")} (${counts.unassigned} unassigned)`;
      $("lib-grid").replaceChildren(...people.map(libCard));
      $("lib-grid").dataset.loaded = String(people.length);
      if (!counts.faces) libStatus("the library is empty: add photos");
    } catch (err) {
      libStatus(err.message, true);
    }
  }

  function libCard(person) {
    const card = document.createElement("div");
    card.className = "lib-card";
    card.dataset.id = String(person.id);
    card.dataset.name = person.name === null ? "" : person.name;
    const open = document.createElement("button");
    open.type = "button";
    open.className = "lib-open";
    open.title = "show the faces";
    const title = document.createElement("span");
    title.className = person.name === null ? "lib-name unnamed" : "lib-name";
    title.textContent = personTitle(person);
    open.append(libThumbnail(person.cover_face_id), title);
    open.addEventListener("click", () => {
      libStatus("");
      openPerson(person.id);
    });
    const count = document.createElement("span");
    count.className = "muted lib-count";
    count.textContent = plural(person.face_count, "face");
    const select = document.createElement("label");
    select.className = "lib-select";
    const box = document.createElement("input");
    box.type = "checkbox";
    box.addEventListener("change", () => {
      if (box.checked) libState.selectedPeople.add(person.id);
      else libState.selectedPeople.delete(person.id);
      card.classList.toggle("selected", box.checked);
      updateMerge();
    });
    select.append(box, " select");
    card.append(open, count, select);
    return card;
  }

  function updateMerge() {
    const n = libState.selectedPeople.size;
    $("lib-merge").disabled = n < 2;
    $("lib-merge").textContent = n >= 2 ? `Merge ${n} selected` : "Merge selected";
  }

  $("lib-merge").addEventListener("click", () => {
    const people = [...libState.selectedPeople];
    libChange(async () => {
      const merged = await call("POST", `${LIB}/merge`, { people });
      return `merged ${people.length} into ${personTitle(merged)} (${plural(merged.face_count, "face")})`;
    });
  });

  $("lib-add-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData();
    const files = [...$("lib-add-images").files];
    for (const file of files) form.append("images", file);
    libStatus(`adding ${plural(files.length, "photo")}…`);
    try {
      const r = await call("POST", `${LIB}/photos`, form);
      const failed = r.failed.map((f) => `${f.filename}: ${f.reason}`).join("; ");
      event.target.reset();
      await loadLibrary();
      libStatus(
        `added ${plural(r.faces, "face")} from ${plural(r.photos, "photo")}: ${r.assigned} to known people, ` +
        `${plural(r.new_clusters, "new cluster")}, ${r.unassigned} unassigned` +
        (r.duplicates.length ? `; ${r.duplicates.length} already in the library` : "") +
        (failed ? `; failed ${failed}` : ""),
      );
    } catch (err) {
      libStatus(err.message, true);
    }
  });

  $("lib-recluster").addEventListener("click", () => {
    libStatus("re-clustering…");
    libChange(async () => {
      const r = await call("POST", `${LIB}/recluster`);
      return `re-clustered ${plural(r.faces, "face")}: ${plural(r.clusters, "unnamed cluster")}, ${r.unassigned} unassigned`;
    });
  });

  // -- one person: faces, rename, split, suggestions ---------------------------------------------

  async function openPerson(personId) {
    libState.person = personId;
    libState.selectedFaces.clear();
    updateFaceActions();
    try {
      const [person, faces, suggestions] = await Promise.all([
        call("GET", `${LIB}/people/${personId}`),
        call("GET", `${LIB}/people/${personId}/faces`),
        call("GET", `${LIB}/people/${personId}/suggestions`),
      ]);
      $("lib-overview").hidden = true;
      $("lib-person").hidden = false;
      $("lib-person").dataset.id = String(person.id);
      $("lib-person-name").textContent = personTitle(person);
      $("lib-person-name").classList.toggle("unnamed", person.name === null);
      $("lib-person-count").textContent = plural(person.face_count, "face");
      $("lib-rename-input").value = person.name || "";
      $("lib-faces").replaceChildren(...faces.map(faceTile));
      $("lib-suggestions").replaceChildren(...suggestions.map((s) => suggestionTile(person, s)));
      if (!suggestions.length) {
        const none = document.createElement("p");
        none.className = "muted";
        none.textContent = "no unassigned face is close to this person";
        $("lib-suggestions").append(none);
      }
    } catch (err) {
      if (err.status === 404) return loadLibrary(); // merged or emptied away meanwhile
      libStatus(err.message, true);
    }
  }

  function faceTile(face) {
    const tile = document.createElement("button");
    tile.type = "button";
    tile.className = face.low_quality ? "lib-face low" : "lib-face";
    tile.dataset.faceId = String(face.id);
    tile.title = `${face.photo || "photo"}${face.low_quality ? " (low quality)" : ""}`;
    tile.append(libThumbnail(face.id));
    tile.addEventListener("click", () => {
      const on = !libState.selectedFaces.has(face.id);
      if (on) libState.selectedFaces.add(face.id);
      else libState.selectedFaces.delete(face.id);
      tile.classList.toggle("selected", on);
      tile.setAttribute("aria-pressed", String(on));
      updateFaceActions();
    });
    return tile;
  }

  function updateFaceActions() {
    const none = libState.selectedFaces.size === 0;
    for (const id of ["lib-split", "lib-unassign", "lib-reject"]) $(id).disabled = none;
  }

  function suggestionTile(person, suggestion) {
    const tile = document.createElement("div");
    tile.className = "lib-suggestion";
    tile.dataset.faceId = String(suggestion.face_id);
    const distance = document.createElement("span");
    distance.className = "muted";
    distance.textContent = `distance ${suggestion.distance.toFixed(3)}`;
    const answer = (verb, path) => () => libChange(async () => {
      await call("POST", `${LIB}/people/${person.id}/${path}`, { face: suggestion.face_id });
      return `face ${suggestion.face_id} ${verb} ${personTitle(person)}`;
    });
    tile.append(
      libThumbnail(suggestion.face_id),
      distance,
      button("Yes", "accept", answer("added to", "accept")),
      button("No", "decline", answer("is not", "decline")),
    );
    return tile;
  }

  $("lib-back").addEventListener("click", () => {
    libStatus("");
    loadLibrary();
  });

  $("lib-rename-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("lib-rename-input").value;
    libChange(async () => {
      const person = await call("PATCH", `${LIB}/people/${libState.person}`, { name });
      return `named ${person.name}`;
    });
  });

  $("lib-split").addEventListener("click", () => {
    const faces = [...libState.selectedFaces];
    libChange(async () => {
      const r = await call("POST", `${LIB}/people/${libState.person}/split`, { faces });
      return `split ${plural(faces.length, "face")} into a new cluster (#${r.person.id})`;
    });
  });

  $("lib-unassign").addEventListener("click", () => {
    const faces = [...libState.selectedFaces];
    libChange(async () => {
      for (const face of faces) await call("POST", `${LIB}/faces/${face}/move`, { person: null });
      return `${plural(faces.length, "face")} taken out of this person`;
    });
  });

  $("lib-reject").addEventListener("click", () => {
    const faces = [...libState.selectedFaces];
    libChange(async () => {
      for (const face of faces) await call("POST", `${LIB}/faces/${face}/reject`, { reason: "not_a_face" });
      return `${plural(faces.length, "face")} marked as not a face`;
    });
  });

  for (const tab of document.querySelectorAll(".tab[data-tab=library]")) {
    tab.addEventListener("click", () => loadLibrary());
  }
})();
