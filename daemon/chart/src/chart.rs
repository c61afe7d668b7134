//! Loading a chart from a directory or a `.tgz`, with its subcharts.
//!
//! Both sources are reduced to a list of (path, bytes) relative to the chart root, then
//! classified exactly like Helm's `loader.LoadFiles`: Chart.yaml, values.yaml,
//! values.schema.json, requirements.yaml (v1), templates/, charts/ (subcharts as
//! directories or archives), and every other file (crds/ included) as `.Files`.

use std::fmt;
use std::io::Read;
use std::path::Path;

use serde_json::{Map, Value as Json};

use crate::error::{ChartError, Result};
use crate::ignore::Rules;
use crate::metadata::{Dependency, Metadata};

/// Bounds on what loading an archive may unpack, so a hostile `.tgz` (a gzip bomb, or
/// subcharts nested in subcharts) cannot fill memory or recurse without end. The bytes
/// count every file of the chart and of every nested subchart archive together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadLimits {
    /// All unpacked files together, subcharts included.
    pub max_total_bytes: u64,
    /// One unpacked file.
    pub max_file_bytes: u64,
    /// How deep subcharts may nest (a chart with subcharts of its own is depth 2).
    pub max_depth: usize,
}

impl Default for LoadLimits {
    /// Helm's own bounds (`--max-chart-size` 100 MiB, `--max-file-size` 5 MiB since
    /// Helm 3.17), so every chart Helm loads loads here; Helm has no depth bound,
    /// 16 levels is far beyond any real chart (the deepest we know nest 3).
    fn default() -> Self {
        LoadLimits {
            max_total_bytes: 100 * 1024 * 1024,
            max_file_bytes: 5 * 1024 * 1024,
            max_depth: 16,
        }
    }
}

/// What is left of a [`LoadLimits`] while an archive unpacks.
struct Budget {
    limits: LoadLimits,
    used: u64,
}

/// Upper bound for the CLI's own local archives, which it reads without limits set.
const UNLIMITED: LoadLimits = LoadLimits {
    max_total_bytes: 1024 * 1024 * 1024,
    max_file_bytes: 1024 * 1024 * 1024,
    max_depth: 64,
};

/// One file of a chart, its path relative to the chart root with `/` separators.
#[derive(Clone)]
pub struct ChartFile {
    /// Path relative to the chart root (`templates/deployment.yaml`).
    pub name: String,
    /// Raw content.
    pub data: Vec<u8>,
}

/// A loaded chart with its subcharts.
#[derive(Clone)]
pub struct Chart {
    pub(crate) metadata: Metadata,
    pub(crate) values: Map<String, Json>,
    pub(crate) default_values: Json,
    pub(crate) schema: Option<Json>,
    pub(crate) templates: Vec<ChartFile>,
    pub(crate) files: Vec<ChartFile>,
    pub(crate) dependencies: Vec<Chart>,
}

impl fmt::Debug for Chart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chart")
            .field("name", &self.metadata.name)
            .field("version", &self.metadata.version)
            .field(
                "templates",
                &self.templates.iter().map(|t| &t.name).collect::<Vec<_>>(),
            )
            .field("dependencies", &self.dependencies)
            .finish_non_exhaustive()
    }
}

impl Chart {
    /// Loads a chart directory, honouring its `.helmignore`.
    pub fn load_dir(path: &Path) -> Result<Chart> {
        let mut rules = Rules::with_defaults();
        let ignore_file = path.join(".helmignore");
        if ignore_file.is_file() {
            let src = std::fs::read_to_string(&ignore_file).map_err(|e| ChartError::io(&ignore_file, e))?;
            rules.parse(&src)?;
        }
        let mut files = Vec::new();
        walk(path, "", &rules, &mut files)?;
        let name = path.display().to_string();
        Chart::from_files(files, &name)
    }

    /// Loads a packaged chart (`.tgz`): one top-level directory holding the chart.
    pub fn load_archive(bytes: &[u8]) -> Result<Chart> {
        Chart::load_archive_within(bytes, &UNLIMITED)
    }

    /// [`Chart::load_archive`] within `limits`: a chart (with its subcharts) that
    /// unpacks to more, or nests deeper, fails with an error saying which bound and
    /// by how much, before it is held in memory whole.
    pub fn load_archive_within(bytes: &[u8], limits: &LoadLimits) -> Result<Chart> {
        let mut budget = Budget {
            limits: *limits,
            used: 0,
        };
        let files = unpack(bytes, "archive", &mut budget)?;
        Chart::from_files_in(files, "archive", &mut budget, 1)
    }

    /// Loads a chart from a directory or a `.tgz` file.
    pub fn load(path: &Path) -> Result<Chart> {
        let meta = std::fs::metadata(path).map_err(|e| ChartError::io(path, e))?;
        if meta.is_dir() {
            return Chart::load_dir(path);
        }
        let bytes = std::fs::read(path).map_err(|e| ChartError::io(path, e))?;
        let mut budget = Budget {
            limits: UNLIMITED,
            used: 0,
        };
        let files = unpack(&bytes, &path.display().to_string(), &mut budget)?;
        Chart::from_files_in(files, &path.display().to_string(), &mut budget, 1)
    }

    /// The chart's name (the alias once a parent renames it).
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// The chart's version from Chart.yaml.
    pub fn version(&self) -> &str {
        &self.metadata.version
    }

    /// The chart's values.yaml as a JSON object (numbers as floats, as Helm reads them).
    pub fn default_values(&self) -> &Json {
        &self.default_values
    }

    /// The parsed Chart.yaml.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The subcharts found in charts/.
    pub fn dependencies(&self) -> &[Chart] {
        &self.dependencies
    }

    /// The chart's CRD files (crds/*), in path order.
    pub fn crd_files(&self) -> impl Iterator<Item = &ChartFile> {
        self.files.iter().filter(|f| {
            f.name.starts_with("crds/")
                && (f.name.ends_with(".yaml") || f.name.ends_with(".yml") || f.name.ends_with(".json"))
        })
    }

    /// Builds a chart from files relative to its root (`origin` names it in errors).
    pub fn from_files(files: Vec<ChartFile>, origin: &str) -> Result<Chart> {
        let mut budget = Budget {
            limits: UNLIMITED,
            used: 0,
        };
        Chart::from_files_in(files, origin, &mut budget, 1)
    }

    /// [`Chart::from_files`] for a chart at `depth` (1: the top), nested archives
    /// unpacked within `budget`.
    fn from_files_in(
        files: Vec<ChartFile>,
        origin: &str,
        budget: &mut Budget,
        depth: usize,
    ) -> Result<Chart> {
        let mut metadata = None;
        let mut values = None;
        let mut schema = None;
        let mut requirements: Option<Vec<Dependency>> = None;
        let mut templates = Vec::new();
        let mut other = Vec::new();
        let mut sub: std::collections::BTreeMap<String, Vec<ChartFile>> = Default::default();
        for f in files {
            let text = || String::from_utf8_lossy(&f.data).into_owned();
            match f.name.as_str() {
                "Chart.yaml" => metadata = Some(Metadata::parse(&text(), &format!("{origin}/Chart.yaml"))?),
                "values.yaml" => {
                    values = Some(crate::values::parse_values(
                        &text(),
                        &format!("{origin}/values.yaml"),
                    )?)
                }
                "values.schema.json" => {
                    let v: Json = serde_json::from_slice(&f.data).map_err(|e| ChartError::Values {
                        file: format!("{origin}/values.schema.json"),
                        message: format!("not valid JSON: {e}"),
                    })?;
                    schema = Some(v);
                }
                "requirements.yaml" => {
                    let doc = crate::values::yaml_to_json(&text(), &format!("{origin}/requirements.yaml"))?;
                    let deps = doc.get("dependencies").cloned().unwrap_or(Json::Array(vec![]));
                    requirements = Some(
                        serde_json::from_value(deps)
                            .map_err(|e| ChartError::Metadata(format!("{origin}/requirements.yaml: {e}")))?,
                    );
                }
                "requirements.lock" | "Chart.lock" => {}
                n if n.starts_with("templates/") => templates.push(f),
                n if n.starts_with("charts/") && !n.ends_with(".prov") => {
                    let rest = &n["charts/".len()..];
                    let (head, tail) = rest.split_once('/').unwrap_or((rest, ""));
                    sub.entry(head.to_string()).or_default().push(ChartFile {
                        name: tail.to_string(),
                        data: f.data,
                    });
                }
                _ => other.push(f),
            }
        }
        let Some(mut metadata) = metadata else {
            return Err(ChartError::Metadata(format!(
                "{origin}: Chart.yaml file is missing"
            )));
        };
        if (metadata.api_version == "v1" || metadata.api_version.is_empty())
            && let Some(reqs) = requirements
        {
            metadata.dependencies = reqs;
        }
        metadata.validate()?;
        let mut dependencies = Vec::new();
        let is_chart = |name: &str, files: &[ChartFile]| {
            name.ends_with(".tgz") || files.iter().any(|f| f.name == "Chart.yaml")
        };
        if depth >= budget.limits.max_depth
            && let Some((name, _)) = sub.iter().find(|(n, f)| is_chart(n, f))
        {
            return Err(ChartError::Archive {
                name: format!("{origin}/charts/{name}"),
                message: format!(
                    "subcharts nest deeper than {} levels (the coordinator's render.max_subchart_depth)",
                    budget.limits.max_depth
                ),
            });
        }
        for (name, files) in sub {
            let sub_origin = format!("{origin}/charts/{name}");
            let unpack_err = |e: ChartError| ChartError::Archive {
                name: sub_origin.clone(),
                message: format!("error unpacking subchart {name} in {}: {e}", metadata.name),
            };
            if name.ends_with(".tgz") {
                for f in files {
                    if f.name.is_empty() {
                        let unpacked = unpack(&f.data, &sub_origin, budget).map_err(unpack_err)?;
                        dependencies.push(
                            Chart::from_files_in(unpacked, &sub_origin, budget, depth + 1)
                                .map_err(unpack_err)?,
                        );
                    }
                }
            } else if files.iter().any(|f| f.name == "Chart.yaml") {
                dependencies
                    .push(Chart::from_files_in(files, &sub_origin, budget, depth + 1).map_err(unpack_err)?);
            } else {
                // Not a chart (a README in charts/, say): Helm keeps such files as plain files.
                other.extend(files.into_iter().map(|f| ChartFile {
                    name: format!("charts/{name}/{}", f.name),
                    data: f.data,
                }));
            }
        }
        let values = values.unwrap_or_default();
        let default_values = Json::Object(values.clone());
        templates.sort_by(|a, b| a.name.cmp(&b.name));
        other.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Chart {
            metadata,
            values,
            default_values,
            schema,
            templates,
            files: other,
            dependencies,
        })
    }
}

fn walk(root: &Path, rel: &str, rules: &Rules, out: &mut Vec<ChartFile>) -> Result<()> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| ChartError::io(&dir, e))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| ChartError::io(&dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let full = e.path();
        // Follows symlinks, as Helm does.
        let meta = std::fs::metadata(&full).map_err(|err| ChartError::io(&full, err))?;
        if rules.ignored(&path, meta.is_dir()) {
            continue;
        }
        if meta.is_dir() {
            walk(root, &path, rules, out)?;
        } else {
            let data = std::fs::read(&full).map_err(|err| ChartError::io(&full, err))?;
            out.push(ChartFile { name: path, data });
        }
    }
    Ok(())
}

/// Packs a chart directory (honouring its `.helmignore`) into a `.tgz` whose single
/// top-level directory is the chart's name, as `helm package` lays it out: what the
/// `convoy` CLI sends with a submit when the chart is on the submitter's disk.
pub fn package_dir(path: &Path) -> Result<Vec<u8>> {
    let mut rules = Rules::with_defaults();
    let ignore_file = path.join(".helmignore");
    if ignore_file.is_file() {
        let src = std::fs::read_to_string(&ignore_file).map_err(|e| ChartError::io(&ignore_file, e))?;
        rules.parse(&src)?;
    }
    let mut files = Vec::new();
    walk(path, "", &rules, &mut files)?;
    package_files(&files, &path.display().to_string())
}

/// The files of a packaged chart, relative to its top-level directory, as
/// [`package_files`] takes them back; within Helm's bounds ([`LoadLimits::default`]).
pub fn unpack_archive(bytes: &[u8]) -> Result<Vec<ChartFile>> {
    let mut budget = Budget {
        limits: LoadLimits::default(),
        used: 0,
    };
    unpack(bytes, "archive", &mut budget)
}

/// Packs a chart's files (relative to its root) into a `.tgz` as [`package_dir`] does;
/// `origin` names the chart in errors.
pub fn package_files(files: &[ChartFile], origin: &str) -> Result<Vec<u8>> {
    // Validates the chart (and learns its name) before packing it.
    let chart = Chart::from_files(files.to_vec(), origin)?;
    let err = |e: std::io::Error| ChartError::Archive {
        name: origin.to_string(),
        message: e.to_string(),
    };
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    for f in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(f.data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        builder
            .append_data(&mut h, format!("{}/{}", chart.name(), f.name), f.data.as_slice())
            .map_err(err)?;
    }
    builder.into_inner().map_err(err)?.finish().map_err(err)
}

/// Unpacks a gzipped tar into files relative to its single top-level directory, every
/// file counted against `budget`.
fn unpack(bytes: &[u8], name: &str, budget: &mut Budget) -> Result<Vec<ChartFile>> {
    let err = |message: String| ChartError::Archive {
        name: name.to_string(),
        message,
    };
    let gz = flate2::read::GzDecoder::new(bytes);
    let mut archive = tar::Archive::new(gz);
    let mut files = Vec::new();
    let mut top: Option<String> = None;
    for entry in archive
        .entries()
        .map_err(|e| err(format!("not a gzipped tar: {e}")))?
    {
        let mut entry = entry.map_err(|e| err(format!("reading archive: {e}")))?;
        let kind = entry.header().entry_type();
        if !kind.is_file() {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| err(format!("bad entry name: {e}")))?
            .to_string_lossy()
            .replace('\\', "/");
        let path = path.trim_start_matches("./").to_string();
        if path.split('/').any(|c| c == "..") {
            return Err(err(format!("entry {path:?} escapes the chart directory")));
        }
        let Some((head, rest)) = path.split_once('/') else {
            // pax_global_header and similar stray top-level files carry no chart content.
            continue;
        };
        match &top {
            None => top = Some(head.to_string()),
            Some(t) if t != head => {
                return Err(err(format!(
                    "chart archive has more than one top-level directory ({t}, {head})"
                )));
            }
            _ => {}
        }
        // The header's size can lie: what is read is bounded, not what is announced.
        let limits = budget.limits;
        let left = limits.max_total_bytes.saturating_sub(budget.used);
        let cap = limits.max_file_bytes.min(left);
        let mut data = Vec::new();
        (&mut entry)
            .take(cap + 1)
            .read_to_end(&mut data)
            .map_err(|e| err(format!("reading {path}: {e}")))?;
        if data.len() as u64 > cap {
            return Err(err(if cap == limits.max_file_bytes {
                format!(
                    "{path} unpacks to more than {} (the coordinator's render.max_chart_file_mib)",
                    mib(limits.max_file_bytes)
                )
            } else {
                format!(
                    "the chart unpacks to more than {} with its subcharts (the coordinator's render.max_chart_mib); stopped at {path}",
                    mib(limits.max_total_bytes)
                )
            }));
        }
        budget.used += data.len() as u64;
        files.push(ChartFile {
            name: rest.to_string(),
            data,
        });
    }
    if files.is_empty() {
        return Err(err("no files in chart archive".to_string()));
    }
    Ok(files)
}

/// `n` bytes in MiB for messages (`5 MiB`, `0.5 MiB`).
fn mib(n: u64) -> String {
    let m = n as f64 / (1024.0 * 1024.0);
    if m.fract() == 0.0 {
        format!("{m} MiB")
    } else {
        format!("{m:.2} MiB")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a chart in memory from (path, content) pairs.
    pub(crate) fn chart_from(files: &[(&str, &str)]) -> Chart {
        Chart::from_files(
            files
                .iter()
                .map(|(n, d)| ChartFile {
                    name: n.to_string(),
                    data: d.as_bytes().to_vec(),
                })
                .collect(),
            "test",
        )
        .unwrap()
    }

    /// Packs files under `top/` into a .tgz.
    pub(crate) fn tgz(top: &str, files: &[(&str, &str)]) -> Vec<u8> {
        let files: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (*n, d.as_bytes())).collect();
        tgz_bytes(top, &files)
    }

    #[test]
    fn classifies_files_like_helm() {
        let c = chart_from(&[
            ("Chart.yaml", "apiVersion: v2\nname: app\nversion: 1.0.0\n"),
            ("values.yaml", "a: 1\n"),
            ("templates/a.yaml", "x"),
            ("crds/c.yaml", "kind: CustomResourceDefinition"),
            ("files/x.txt", "hello"),
            (
                "charts/sub/Chart.yaml",
                "apiVersion: v2\nname: sub\nversion: 0.1.0\n",
            ),
            ("charts/sub/templates/b.yaml", "y"),
        ]);
        assert_eq!(c.name(), "app");
        assert_eq!(c.templates.len(), 1);
        assert_eq!(
            c.files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            ["crds/c.yaml", "files/x.txt"]
        );
        assert_eq!(c.dependencies[0].name(), "sub");
        assert_eq!(c.crd_files().count(), 1);
        assert_eq!(c.default_values()["a"].as_f64(), Some(1.0));
    }

    /// Packs binary files under `top/` into a .tgz.
    pub(crate) fn tgz_bytes(top: &str, files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::best(),
        ));
        for (n, d) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(d.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            builder.append_data(&mut h, format!("{top}/{n}"), *d).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    fn meta(name: &str) -> Vec<u8> {
        format!("apiVersion: v2\nname: {name}\nversion: 1.0.0\n").into_bytes()
    }

    /// A chart whose subcharts nest `levels` deep, each as an archive in its parent.
    fn nested(levels: usize) -> Vec<u8> {
        let mut inner = tgz_bytes(
            &format!("c{levels}"),
            &[("Chart.yaml", &meta(&format!("c{levels}")))],
        );
        for i in (1..levels).rev() {
            let name = format!("c{i}");
            let sub = format!("charts/c{}.tgz", i + 1);
            inner = tgz_bytes(&name, &[("Chart.yaml", &meta(&name)), (&sub, &inner)]);
        }
        inner
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_file_and_total_bounds() {
        let limits = LoadLimits {
            max_total_bytes: 3 * 1024 * 1024,
            max_file_bytes: 1024 * 1024,
            max_depth: 4,
        };
        // 2 MiB of zeros compresses to a few KiB.
        let zeros = vec![0u8; 2 * 1024 * 1024];
        let bomb = tgz_bytes("app", &[("Chart.yaml", &meta("app")), ("files/zeros", &zeros)]);
        assert!(bomb.len() < 20_000, "{}", bomb.len());
        let e = Chart::load_archive_within(&bomb, &limits)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("files/zeros unpacks to more than 1 MiB") && e.contains("render.max_chart_file_mib"),
            "{e}"
        );
        // Many files each under the bound, more than the total: the total stops it,
        // counting subchart archives too.
        let mb = vec![b'x'; 900 * 1024];
        let sub = tgz_bytes("sub", &[("Chart.yaml", &meta("sub")), ("a", &mb), ("b", &mb)]);
        let parent = tgz_bytes(
            "app",
            &[
                ("Chart.yaml", &meta("app")),
                ("c", &mb),
                ("d", &mb),
                ("charts/sub.tgz", &sub),
            ],
        );
        let e = Chart::load_archive_within(&parent, &limits)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unpacks to more than 3 MiB with its subcharts"), "{e}");
        assert!(e.contains("charts/sub.tgz"), "names the subchart: {e}");
        // Within the bounds it loads.
        let ok = tgz_bytes("app", &[("Chart.yaml", &meta("app")), ("c", &mb)]);
        assert_eq!(Chart::load_archive_within(&ok, &limits).unwrap().name(), "app");
    }

    #[test]
    fn subcharts_nest_only_as_deep_as_allowed() {
        let limits = LoadLimits {
            max_depth: 4,
            ..LoadLimits::default()
        };
        let c = Chart::load_archive_within(&nested(4), &limits).unwrap();
        assert_eq!(
            c.dependencies()[0].dependencies()[0].dependencies()[0].name(),
            "c4"
        );
        let e = Chart::load_archive_within(&nested(5), &limits)
            .unwrap_err()
            .to_string();
        assert!(e.contains("subcharts nest deeper than 4 levels"), "{e}");
        assert!(e.contains("render.max_subchart_depth"), "{e}");
    }

    #[test]
    fn archive_with_archived_subchart() {
        let sub = tgz(
            "sub",
            &[("Chart.yaml", "apiVersion: v2\nname: sub\nversion: 0.2.0\n")],
        );
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        let mut add = |n: &str, d: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(d.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            builder.append_data(&mut h, n, d).unwrap();
        };
        add("app/Chart.yaml", b"apiVersion: v2\nname: app\nversion: 1.0.0\n");
        add("app/charts/sub-0.2.0.tgz", &sub);
        let bytes = builder.into_inner().unwrap().finish().unwrap();
        let c = Chart::load_archive(&bytes).unwrap();
        assert_eq!(c.dependencies[0].version(), "0.2.0");
    }

    #[test]
    fn garbage_archive_is_an_error_not_a_panic() {
        let err = Chart::load_archive(b"definitely not gzip")
            .unwrap_err()
            .to_string();
        assert!(err.contains("archive"), "{err}");
    }

    #[test]
    fn missing_chart_yaml_is_named() {
        let err = Chart::from_files(vec![], "mychart").unwrap_err().to_string();
        assert!(err.contains("mychart: Chart.yaml file is missing"), "{err}");
    }

    #[test]
    fn packaged_directory_loads_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::create_dir_all(p.join("templates")).unwrap();
        std::fs::write(
            p.join("Chart.yaml"),
            "apiVersion: v2\nname: pkg\nversion: 1.2.3\n",
        )
        .unwrap();
        std::fs::write(p.join("templates/a.yaml"), "kind: ConfigMap\n").unwrap();
        std::fs::write(p.join(".helmignore"), "*.tmp\n").unwrap();
        std::fs::write(p.join("scratch.tmp"), "x").unwrap();
        let c = Chart::load_archive(&package_dir(p).unwrap()).unwrap();
        assert_eq!((c.name(), c.version()), ("pkg", "1.2.3"));
        assert_eq!(c.templates[0].name, "templates/a.yaml");
        assert!(!c.files.iter().any(|f| f.name == "scratch.tmp"));
    }

    #[test]
    fn directory_load_honours_helmignore() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("Chart.yaml"), "apiVersion: v2\nname: d\nversion: 1.0.0\n").unwrap();
        std::fs::write(p.join(".helmignore"), "*.bak\n").unwrap();
        std::fs::write(p.join("notes.bak"), "x").unwrap();
        std::fs::write(p.join("keep.txt"), "x").unwrap();
        let c = Chart::load(p).unwrap();
        let names: Vec<_> = c.files.iter().map(|f| f.name.as_str()).collect();
        assert!(
            names.contains(&"keep.txt") && !names.contains(&"notes.bak"),
            "{names:?}"
        );
    }
}
