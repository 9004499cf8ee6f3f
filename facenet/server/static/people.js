// The People tab: the photo library's people and unnamed clusters (/api/v1/library).
// Plain JS over app.js's `call`, `status` and `$`; names are shown with textContent only.
// Everything else stays inside this function: app.js's globals are not shadowed.
"use strict";

(() => {
  const LIB = "/library";
  const UNASSIGNED = "unassigned"; // libState.view for the unassigned faces
  // view: null (the grid), a person id, or UNASSIGNED
  const libState = { view: null, people: [], selectedPeople: new Set(), selectedFaces: new Set() };

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

  function libButton(text, className, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    if (className) b.className = className;
    b.addEventListener("click", onClick);
    return b;
  }

  // Show `items` in `container` SHOWN at a time (thumbnails are fetched as they are shown), with a
  // "show more" button while some are left.
  const SHOWN = 120;
  function showSome(container, items, make) {
    container.replaceChildren();
    let next = 0;
    const more = libButton("", "lib-more", () => {
      more.remove();
      addPage();
    });
    const addPage = () => {
      container.append(...items.slice(next, next + SHOWN).map(make));
      next += SHOWN;
      if (next < items.length) {
        more.textContent = `Show ${Math.min(SHOWN, items.length - next)} more of ${items.length - next}`;
        container.append(more);
      }
    };
    addPage();
  }

  function refresh() {
    if (libState.view === null) return loadLibrary();
    if (libState.view === UNASSIGNED) return openUnassigned();
    return openPerson(libState.view);
  }

  // Run a change, refresh what is shown, then report it; an error goes to the status line, after
  // a refresh too: part of the change may be made (one face of several), and the list not stale.
  async function libChange(work) {
    try {
      const message = await work();
      await refresh();
      libStatus(message || "");
    } catch (err) {
      await refresh();
      libStatus(err.message, true);
    }
  }

  // A click handler that keeps its button disabled while `work` runs, so a double click acts
  // once; the buttons that depend on a selection then take the state it gives them.
  function busyClick(work) {
    return async (event) => {
      const button = event.currentTarget;
      button.disabled = true;
      try {
        await work();
      } finally {
        button.disabled = false;
        updateMerge();
        updateFaceActions();
      }
    };
  }

  // -- overview: the grid of people and clusters ------------------------------------------------

  async function loadLibrary() {
    libState.view = null;
    libState.selectedPeople.clear();
    $("lib-person").hidden = true;
    $("lib-overview").hidden = false;
    updateMerge();
    try {
      const [counts, people] = await Promise.all([call("GET", LIB), call("GET", `${LIB}/people`)]);
      libState.people = people;
      $("lib-summary").textContent =
        `${plural(counts.named, "named person", "named people")}, ` +
        `${plural(counts.clusters, "unnamed cluster")}, ${plural(counts.faces, "face")}`;
      $("lib-show-unassigned").textContent = `Unassigned faces (${counts.unassigned})`;
      $("lib-show-unassigned").disabled = counts.unassigned === 0;
      showSome($("lib-grid"), people, libCard);
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

  $("lib-merge").addEventListener("click", busyClick(() => {
    const people = [...libState.selectedPeople];
    return libChange(async () => {
      const merged = await call("POST", `${LIB}/merge`, { people });
      return `merged ${people.length} into ${personTitle(merged)} (${plural(merged.face_count, "face")})`;
    });
  }));

  $("lib-add-form").addEventListener("submit", whileBusy(async (event) => {
    const form = new FormData();
    const files = [...$("lib-add-images").files];
    for (const file of files) form.append("images", file);
    libStatus(`adding ${plural(files.length, "photo")}…`);
    try {
      const r = await call("POST", `${LIB}/photos`, form);
      const failed = r.failed.map((f) => `${f.filename}: ${f.reason}`).join("; ");
      event.target.reset();
      await refresh();
      libStatus(
        `added ${plural(r.faces, "face")} from ${plural(r.photos, "photo")}: ${r.assigned} joined a person or cluster, ` +
        `${plural(r.new_clusters, "new cluster")}, ${r.unassigned} unassigned` +
        (r.regrouped ? `, ${r.regrouped} regrouped` : "") +
        (r.duplicates.length ? `; ${r.duplicates.length} already in the library` : "") +
        (failed ? `; failed ${failed}` : ""),
      );
    } catch (err) {
      libStatus(err.message, true);
    }
  }));

  $("lib-recluster").addEventListener("click", busyClick(() => {
    libStatus("re-clustering…");
    return libChange(async () => {
      const r = await call("POST", `${LIB}/recluster`);
      return `re-clustered ${plural(r.faces, "face")}: ${plural(r.clusters, "unnamed cluster")}, ${r.unassigned} unassigned`;
    });
  }));

  // -- one person (or the unassigned faces): faces, rename, split, move, suggestions ------------

  function showFaces(faces, titleText, unnamed, count) {
    libState.selectedFaces.clear();
    updateFaceActions();
    $("lib-overview").hidden = true;
    $("lib-person").hidden = false;
    $("lib-person").dataset.id = String(libState.view);
    $("lib-person-name").textContent = titleText;
    $("lib-person-name").classList.toggle("unnamed", unnamed);
    $("lib-person-count").textContent = plural(count, "face");
    showSome($("lib-faces"), faces, faceTile);
    const isPerson = libState.view !== UNASSIGNED;
    for (const el of document.querySelectorAll("#lib-person .lib-only-person")) el.hidden = !isPerson;
    fillMoveTargets();
  }

  async function openPerson(personId) {
    libState.view = personId;
    try {
      const [person, faces, suggestions, people] = await Promise.all([
        call("GET", `${LIB}/people/${personId}`),
        call("GET", `${LIB}/people/${personId}/faces?limit=5000`),
        call("GET", `${LIB}/people/${personId}/suggestions`),
        call("GET", `${LIB}/people`),
      ]);
      libState.people = people;
      showFaces(faces, personTitle(person), person.name === null, person.face_count);
      $("lib-rename-input").value = person.name || "";
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

  async function openUnassigned() {
    libState.view = UNASSIGNED;
    try {
      const [faces, people] = await Promise.all([
        call("GET", `${LIB}/faces?unassigned=true&limit=5000`),
        call("GET", `${LIB}/people`),
      ]);
      libState.people = people;
      showFaces(faces, "Unassigned faces", false, faces.length);
    } catch (err) {
      libStatus(err.message, true);
    }
  }

  function fillMoveTargets() {
    const options = libState.people
      .filter((p) => p.id !== libState.view)
      .map((p) => {
        const option = document.createElement("option");
        option.value = String(p.id);
        option.textContent = `${p.name === null ? `unnamed #${p.id}` : p.name} (${plural(p.face_count, "face")})`;
        return option;
      });
    const nobody = document.createElement("option");
    nobody.value = "";
    nobody.textContent = "nobody (unassigned)";
    if (libState.view !== UNASSIGNED) options.push(nobody);
    $("lib-move-target").replaceChildren(...options);
  }

  function faceTile(face) {
    const tile = document.createElement("button");
    tile.type = "button";
    tile.className = face.low_quality ? "lib-face low" : "lib-face";
    tile.dataset.faceId = String(face.id);
    tile.title = `${face.photo || "photo"}${face.low_quality ? " (low quality)" : ""}`;
    tile.setAttribute("aria-pressed", "false");
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
    for (const id of ["lib-split", "lib-unassign", "lib-reject", "lib-move"]) $(id).disabled = none;
  }

  function suggestionTile(person, suggestion) {
    const tile = document.createElement("div");
    tile.className = "lib-suggestion";
    tile.dataset.faceId = String(suggestion.face_id);
    const distance = document.createElement("span");
    distance.className = "muted";
    distance.textContent = `distance ${suggestion.distance.toFixed(3)}`;
    const answer = (verb, path) => busyClick(() => libChange(async () => {
      await call("POST", `${LIB}/people/${person.id}/${path}`, { face: suggestion.face_id });
      return `face ${suggestion.face_id} ${verb} ${personTitle(person)}`;
    }));
    tile.append(
      libThumbnail(suggestion.face_id),
      distance,
      libButton("Yes", "accept", answer("added to", "accept")),
      libButton("No", "decline", answer("is not", "decline")),
    );
    return tile;
  }

  // Apply `path(face)` with `body` to every selected face, one request each.
  function eachSelected(path, body, message) {
    const faces = [...libState.selectedFaces];
    return libChange(async () => {
      for (const face of faces) await call("POST", `${LIB}/faces/${face}/${path}`, body);
      return `${plural(faces.length, "face")} ${message}`;
    });
  }

  $("lib-back").addEventListener("click", () => {
    libStatus("");
    loadLibrary();
  });

  $("lib-show-unassigned").addEventListener("click", () => {
    libStatus("");
    openUnassigned();
  });

  $("lib-rename-form").addEventListener("submit", whileBusy(() => {
    const name = $("lib-rename-input").value;
    return libChange(async () => {
      const person = await call("PATCH", `${LIB}/people/${libState.view}`, { name });
      return `named ${person.name}`;
    });
  }));

  $("lib-split").addEventListener("click", busyClick(() => {
    const faces = [...libState.selectedFaces];
    return libChange(async () => {
      const r = await call("POST", `${LIB}/people/${libState.view}/split`, { faces });
      return `split ${plural(faces.length, "face")} into a new cluster (#${r.person.id})`;
    });
  }));

  $("lib-unassign").addEventListener("click", busyClick(() =>
    eachSelected("move", { person: null }, "taken out of this person")));

  $("lib-reject").addEventListener("click", busyClick(() =>
    eachSelected("reject", { reason: "not_a_face" }, "marked as not a face")));

  $("lib-move").addEventListener("click", busyClick(() => {
    const target = $("lib-move-target");
    const person = target.value === "" ? null : Number(target.value);
    const label = target.selectedOptions.length ? target.selectedOptions[0].textContent : "";
    return eachSelected("move", { person }, `moved to ${label}`);
  }));

  // A new API key: the open tab loads again with it (not the old key's error over an empty grid).
  $("api-key").addEventListener("change", () => {
    if ($("library").hidden) return;
    libStatus("");
    refresh();
  });

  for (const tab of document.querySelectorAll(".tab[data-tab=library]")) {
    tab.addEventListener("click", () => loadLibrary());
  }
})();
