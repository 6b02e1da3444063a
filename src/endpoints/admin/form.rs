//! The SSO page's submitted forms: urlencoded or multipart (the metadata
//! upload) read into one [`Form`], and the rows of the mapping tables.

use bytes::Bytes;
use http::header;
use http::Request;
use hyper::body::Incoming;

use crate::config::raw::ProjectRule;
use crate::error::Error;
use crate::settings::{RoleRow, WorkspaceRow};

/// Largest form accepted (an IdP metadata document is at most 4 MiB).
const MAX_FORM: usize = 4 * 1024 * 1024 + 64 * 1024;

/// A submitted form: every (name, value), in order.
pub(super) struct Form(Vec<(String, String)>);

impl Form {
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or("").to_string()
    }
}

/// Reads an urlencoded or multipart form.
pub(super) async fn read(req: Request<Incoming>) -> Result<Form, Error> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = crate::http::read_body(req.into_body(), MAX_FORM).await?;
    if ct
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        return Ok(Form(
            form_urlencoded::parse(&body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ));
    }
    let boundary = multer::parse_boundary(&ct).map_err(|_| Error::BadRequest("expected a form"))?;
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut out = Vec::new();
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(_) => return Err(Error::BadRequest("malformed multipart form")),
        };
        let name = field.name().unwrap_or("").to_string();
        let bytes = field
            .bytes()
            .await
            .map_err(|_| Error::BadRequest("malformed multipart form"))?;
        out.push((name, String::from_utf8_lossy(&bytes).into_owned()));
    }
    Ok(Form(out))
}

/// The submitted rows of the three tables (blank and removed rows left out).
pub(super) fn rows(form: &Form) -> (Vec<RoleRow>, Vec<WorkspaceRow>, Vec<ProjectRule>) {
    let lines = |v: String| -> Vec<String> {
        v.lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    };
    let mut roles = Vec::new();
    let mut ws = Vec::new();
    let mut projects = Vec::new();
    let indexes = |prefix: &str| -> Vec<usize> {
        let mut v: Vec<usize> = form
            .0
            .iter()
            .filter_map(|(k, _)| k.strip_prefix(prefix)?.split('-').next()?.parse().ok())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    for i in indexes("role-") {
        let p = |f: &str| form.text(&format!("role-{i}-{f}"));
        let row = RoleRow {
            role: p("name"),
            groups: lines(p("groups")),
        };
        if p("remove").is_empty() && !(row.role.trim().is_empty() && row.groups.is_empty()) {
            roles.push(row);
        }
    }
    for i in indexes("ws-") {
        let p = |f: &str| form.text(&format!("ws-{i}-{f}"));
        let row = WorkspaceRow {
            title: p("title"),
            groups: lines(p("groups")),
        };
        if p("remove").is_empty() && !(row.title.trim().is_empty() && row.groups.is_empty()) {
            ws.push(row);
        }
    }
    for i in indexes("prj-") {
        let p = |f: &str| form.text(&format!("prj-{i}-{f}"));
        let row = ProjectRule {
            project: p("project"),
            group: p("group"),
            role: p("role"),
        };
        let blank = row.project.trim().is_empty() && row.group.trim().is_empty();
        if p("remove").is_empty() && !blank {
            projects.push(row);
        }
    }
    (roles, ws, projects)
}
