"use strict";
// The answer view. Every string from the API goes in as text (textContent), except `answer.html`, the
// documentation the API rendered from Markdown and sanitised (mlops.serving.docs_html); the page's
// Content-Security-Policy runs no script but this file, whatever that HTML holds.
const form = document.getElementById("ask-form");
const statusLine = document.getElementById("status");
const list = document.getElementById("answers");
const SVG = "http://www.w3.org/2000/svg";

function setStatus(text, isError = false) {
  statusLine.textContent = text;
  statusLine.className = isError ? "error" : "";
}

async function postJSON(url, body) {
  const response = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  const data = await response.json().catch(() => ({error: response.statusText}));
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function icon(name) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "icon");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const use = document.createElementNS(SVG, "use");
  use.setAttribute("href", `#icon-${name}`);
  svg.append(use);
  return svg;
}

// A link of the answer's own (source, documentation): only to a web page.
function link(href, name, label) {
  if (!/^https?:\/\//.test(href)) return null;
  const a = el("a", `link link-${name}`);
  a.href = href;
  a.rel = "noopener noreferrer";
  a.append(icon(name === "source" ? "code" : "book"), document.createTextNode(label));
  return a;
}

function heading(answer) {
  const h = el("h2", "title");
  h.append(el("code", "symbol", answer.symbol));
  if (answer.signature) h.append(el("code", "signature", answer.signature));
  return h;
}

function meta(answer) {
  const line = el("p", "meta");
  line.append(el("span", "source", `${answer.path}:${answer.line} · score ${answer.score.toFixed(3)}`));
  for (const found of [answer.source_url && link(answer.source_url, "source", "Source on GitHub"),
                       answer.docs_url && link(answer.docs_url, "docs", "Documentation")]) {
    if (found) line.append(found);
  }
  return line;
}

// The part of `text` a span names: the API counts characters (code points), String.slice UTF-16 units.
function spanText(text, span) {
  return Array.from(text).slice(span.start, span.end).join("");
}

// The lead: the highlighted sentence, after the summary (the first sentence) when that is another one.
function highlight(answer) {
  if (!answer.highlight) return null;
  const lead = el("p", "highlight");
  const summary = answer.summary;
  if (summary && summary.start !== answer.highlight.start) {
    lead.append(el("span", "summary", spanText(answer.text, summary)), " … ");
  }
  lead.append(el("mark", "", spanText(answer.text, answer.highlight)));
  return lead;
}

function documentation(answer) {
  const details = el("details", "docs");
  details.append(el("summary", "", "Documentation"));
  const body = el("div", "docs-body");
  if (answer.html !== null && answer.html !== undefined) body.innerHTML = answer.html;  // sanitised by the API
  else body.append(el("p", "plain", answer.text));
  details.append(body);
  return details;
}

function example(answer) {
  if (!answer.example) return null;
  const box = el("figure", "example");
  const caption = el("figcaption", "", "Example");
  const copy = el("button", "copy");
  copy.type = "button";
  copy.setAttribute("aria-label", `Copy the example of ${answer.symbol}`);
  copy.append(icon("copy"), document.createTextNode("Copy"));
  const done = el("span", "copied", "");
  done.setAttribute("role", "status");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(answer.example);
      done.textContent = "copied";
    } catch (err) {
      done.textContent = `not copied: ${err.message}`;
    }
  });
  caption.append(copy, done);
  const pre = el("pre");
  pre.append(el("code", "language-python", answer.example));
  box.append(caption, pre);
  return box;
}

function thumbs(question, answer, modelVersion) {
  const box = el("div", "thumbs");
  for (const [rating, label] of [["up", "Helpful"], ["down", "Wrong"]]) {
    const button = el("button", "thumb");
    button.type = "button";
    button.dataset.rating = rating;
    button.setAttribute("aria-label", `${label}: thumbs ${rating} for ${answer.symbol}`);  // the visible word leads (WCAG 2.5.3)
    button.setAttribute("aria-pressed", "false");
    button.append(icon(rating), document.createTextNode(label));
    button.addEventListener("click", async () => {
      box.querySelectorAll("button").forEach(b => b.disabled = true);
      try {
        const saved = await postJSON("/v1/feedback", {question, symbol: answer.symbol, rating, model_version: modelVersion});
        button.setAttribute("aria-pressed", "true");
        box.append(el("span", "thanks", `thanks (feedback #${saved.id})`));
      } catch (err) {
        box.querySelectorAll("button").forEach(b => b.disabled = false);
        setStatus(`feedback not saved: ${err.message}`, true);
      }
    });
    box.append(button);
  }
  return box;
}

function answerItem(question, answer, modelVersion) {
  const item = el("li", "answer");
  const parts = [heading(answer), meta(answer), highlight(answer), example(answer), documentation(answer),
                 thumbs(question, answer, modelVersion)];
  item.append(...parts.filter(Boolean));
  return item;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const question = document.getElementById("question").value;
  list.replaceChildren();
  setStatus("searching…");
  try {
    const data = await postJSON("/v1/ask", {question, top_k: 5});
    if (data.abstained) {
      setStatus(`No confident answer from model version ${data.model_version}: ${data.reason}`);
      return;
    }
    setStatus(`${data.answers.length} answers from model version ${data.model_version} in ${data.latency_ms} ms`);
    list.append(...data.answers.map(answer => answerItem(question, answer, data.model_version)));
  } catch (err) {
    setStatus(`Error: ${err.message}`, true);
  }
});
