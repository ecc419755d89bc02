// Renders /api/v2/openapi.json as a readable list of endpoints, grouped by tag, with their parameters and the
// schemas of their bodies and answers. Everything comes from the document the server generates from its handlers.
"use strict";

const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  Object.entries(attrs).forEach(([k, v]) => node.setAttribute(k, v));
  children.forEach((c) => node.append(c));
  return node;
};

const schemaName = (schema) => {
  if (!schema) return "";
  if (schema.$ref) return schema.$ref.split("/").pop();
  if (schema.oneOf) return schema.oneOf.map(schemaName).join(" | ");
  return schema.type ? String(schema.type) : "any";
};

function operation(path, method, op, components) {
  const params = (op.parameters || []).map((p) => `${p.name} (${p.in}${p.required ? ", required" : ""})`);
  const body = op.requestBody && Object.values(op.requestBody.content)[0].schema;
  const answers = Object.entries(op.responses || {}).map(([code, r]) => {
    const content = r.content ? Object.values(r.content)[0].schema : null;
    return `${code}${content ? " " + schemaName(content) : ""}`;
  });
  const used = [body, ...Object.values(op.responses || {}).map((r) => r.content && Object.values(r.content)[0].schema)]
    .filter((s) => s && s.$ref)
    .map((s) => [schemaName(s), components[schemaName(s)]]);
  const details = el("details", {}, el("summary", {}, "schemas"));
  used.forEach(([name, schema]) => details.append(el("pre", {}, `${name}: ${JSON.stringify(schema, null, 2)}`)));
  return el("div", { class: "op" },
    el("span", { class: "method" }, method), el("code", {}, path), " ", op.summary || "",
    el("div", {}, params.length ? `Parameters: ${params.join(", ")}` : ""),
    el("div", {}, body ? `Body: ${schemaName(body)}` : ""),
    el("div", {}, `Answers: ${answers.join(", ")}`),
    used.length ? details : "");
}

async function render() {
  const root = document.getElementById("docs");
  const doc = await (await fetch("/api/v2/openapi.json")).json();
  const components = (doc.components && doc.components.schemas) || {};
  const byTag = new Map();
  Object.entries(doc.paths).forEach(([path, item]) => {
    Object.entries(item).forEach(([method, op]) => {
      const tag = (op.tags && op.tags[0]) || "Other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operation(path, method, op, components));
    });
  });
  root.replaceChildren(el("p", {}, doc.info.description || ""));
  byTag.forEach((ops, tag) => root.append(el("section", {}, el("h2", {}, tag), ...ops)));
}

render().catch((e) => {
  document.getElementById("docs").textContent = `The API description could not be loaded: ${e}`;
});
