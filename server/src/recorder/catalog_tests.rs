use super::*;
use crate::recorder::OpusFile;

/// The three-byte Opus packet browsers send for 20 ms of silence.
const SILENCE: [u8; 3] = [0xf8, 0xff, 0xfe];

/// An Ogg Opus file of `packets` packets of 20 ms each.
fn opus(path: &Path, packets: u32) {
    opus_of(path, packets, &SILENCE);
}

/// An Ogg Opus file of `packets` copies of `packet`, 20 ms apart.
fn opus_of(path: &Path, packets: u32, packet: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut file = OpusFile::create(path, 1).unwrap();
    for n in 0..packets {
        file.write(1_700_000_000_000, n * 960, packet).unwrap();
        if n % 50 == 49 {
            file.flush().unwrap();
        }
    }
    file.finish().unwrap();
}

/// One EBML element: its id, an 8-byte size, its body.
fn ebml(id: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = id.to_vec();
    out.push(0x01);
    out.extend_from_slice(&(body.len() as u64).to_be_bytes()[1..]);
    out.extend_from_slice(body);
    out
}

fn uint(id: &[u8], value: u64) -> Vec<u8> {
    ebml(id, &value.to_be_bytes())
}

/// A WebM file of one 16×16 VP8 track, with blocks at `blocks` ms (one cluster each), and
/// the Segment duration `duration` ms when given.
fn webm(duration: Option<f64>, blocks: &[u64]) -> Vec<u8> {
    let header = [
        uint(&[0x42, 0x86], 1),
        uint(&[0x42, 0xF7], 1),
        uint(&[0x42, 0xF2], 4),
        uint(&[0x42, 0xF3], 8),
        ebml(&[0x42, 0x82], b"webm"),
        uint(&[0x42, 0x87], 4),
        uint(&[0x42, 0x85], 2),
    ]
    .concat();
    let mut info = [
        uint(&[0x2A, 0xD7, 0xB1], 1_000_000),
        ebml(&[0x4D, 0x80], b"test"),
        ebml(&[0x57, 0x41], b"test"),
    ]
    .concat();
    if let Some(d) = duration {
        info.extend(ebml(&[0x44, 0x89], &d.to_be_bytes()));
    }
    let video = [uint(&[0xB0], 16), uint(&[0xBA], 16)].concat();
    let entry = [
        uint(&[0xD7], 1),
        uint(&[0x73, 0xC5], 1),
        uint(&[0x83], 1),
        ebml(&[0x86], b"V_VP8"),
        ebml(&[0xE0], &video),
    ]
    .concat();
    let mut segment = [
        ebml(&[0x15, 0x49, 0xA9, 0x66], &info),
        ebml(&[0x16, 0x54, 0xAE, 0x6B], &ebml(&[0xAE], &entry)),
    ]
    .concat();
    for &at in blocks {
        let block = [&[0x81, 0, 0, 0x80][..], &[0u8; 8]].concat();
        let cluster = [uint(&[0xE7], at), ebml(&[0xA3], &block)].concat();
        segment.extend(ebml(&[0x1F, 0x43, 0xB6, 0x75], &cluster));
    }
    [
        ebml(&[0x1A, 0x45, 0xDF, 0xA3], &header),
        ebml(&[0x18, 0x53, 0x80, 0x67], &segment),
    ]
    .concat()
}

#[test]
fn ids_are_hex_and_paths_are_not_ids() {
    let id = file_id("s1", "p1/t1-1.opus");
    assert!(is_file_id(&id), "{id}");
    assert_ne!(
        id,
        file_id("s2", "p1/t1-1.opus"),
        "a session's ids are its own"
    );
    for bad in [
        "",
        "..",
        "../../etc/passwd",
        "p1/t1-1.opus",
        "%2e%2e%2f",
        &id.to_uppercase(),
        &id[1..],
        &format!("{id}0"),
    ] {
        assert!(!is_file_id(bad), "{bad}");
    }
}

#[test]
fn a_session_folder_lists_its_files_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let session = dir.path().join("s1");
    opus(&session.join("p2/t9-1.opus"), 100);
    opus(&session.join("p1/t1-2.opus"), 50);
    opus(&session.join("p1/t1-1.opus"), 250);
    std::fs::write(session.join("p1/v1-1.webm"), webm(Some(1500.0), &[0])).unwrap();
    opus(&session.join("mixdown.opus"), 10);
    std::fs::write(session.join("chapters.json"), b"{}").unwrap();
    std::fs::write(session.join("chapters.vtt"), b"WEBVTT\n").unwrap();
    // Not ours: ignored.
    std::fs::write(session.join("mixdown.opus.tmp"), b"x").unwrap();
    std::fs::write(session.join("p1/notes.txt"), b"x").unwrap();
    std::fs::write(session.join("p1/t1.opus"), b"x").unwrap();
    std::fs::create_dir_all(session.join("bad name")).unwrap();
    std::fs::write(session.join("bad name/t1-1.opus"), b"x").unwrap();

    let found = scan(dir.path(), "s1").unwrap();
    let shown: Vec<(Kind, Option<&str>, &str, &str)> = found
        .iter()
        .map(|r| {
            (
                r.kind,
                r.speaker.as_deref(),
                r.file_name.as_str(),
                r.content_type,
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            (Kind::Audio, Some("p1"), "s1_p1_t1-1.opus", "audio/ogg"),
            (Kind::Audio, Some("p1"), "s1_p1_t1-2.opus", "audio/ogg"),
            (Kind::Video, Some("p1"), "s1_p1_v1-1.webm", "video/webm"),
            (Kind::Audio, Some("p2"), "s1_p2_t9-1.opus", "audio/ogg"),
            (Kind::Chapters, None, "s1_chapters.json", "application/json"),
            (
                Kind::Chapters,
                None,
                "s1_chapters.vtt",
                "text/vtt; charset=utf-8"
            ),
            (Kind::Mixdown, None, "s1_mixdown.opus", "audio/ogg"),
        ]
    );
    assert_eq!(found[0].id, file_id("s1", "p1/t1-1.opus"));
    assert_eq!(found[4].size, 2);
    let durations: Vec<Option<u64>> = found.iter().map(duration_ms).collect();
    assert_eq!(
        durations,
        [
            Some(5000),
            Some(1000),
            Some(1500),
            Some(2000),
            None,
            None,
            Some(200)
        ]
    );
    let again = find(dir.path(), "s1", &found[3].id).unwrap().unwrap();
    assert_eq!(again.path, session.join("p2/t9-1.opus"));
    assert!(find(dir.path(), "s1", &"0".repeat(32)).unwrap().is_none());
    assert!(scan(dir.path(), "nothing-here").unwrap().is_empty());
    assert!(scan(dir.path(), "..").is_err(), "a session is an id");
}

/// A long file: the duration comes from the tail, and matches a read from the start.
#[test]
fn a_long_ogg_file_is_timed_from_its_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.opus");
    // 90 s of 100-byte packets: more than OGG_TAIL bytes.
    let mut packet = SILENCE.to_vec();
    packet.resize(100, 0);
    opus_of(&path, 4500, &packet);
    assert!(std::fs::metadata(&path).unwrap().len() > OGG_TAIL);
    assert_eq!(ogg_duration_ms(&path), Some(90_000));
    // Cut mid-page, as a crash leaves it: the last whole page counts.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 20]).unwrap();
    let cut = ogg_duration_ms(&path).unwrap();
    assert!((88_000..90_000).contains(&cut), "{cut}");
    std::fs::write(&path, b"not ogg").unwrap();
    assert_eq!(ogg_duration_ms(&path), None);
}

#[test]
fn a_webm_without_a_duration_is_timed_by_its_last_block() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.webm");
    std::fs::write(&path, webm(None, &[0, 1000, 2500])).unwrap();
    assert_eq!(webm_duration_ms(&path), Some(2500));
    std::fs::write(&path, webm(Some(4000.0), &[0])).unwrap();
    assert_eq!(webm_duration_ms(&path), Some(4000));
    std::fs::write(&path, b"not webm").unwrap();
    assert_eq!(webm_duration_ms(&path), None);
}

/// What a purge or a rename removes while a scan looks is left out, not an error for
/// everyone who lists the session.
#[test]
fn what_goes_while_a_scan_looks_is_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("s1").join("p1");
    assert!(super::scan_speaker("s1", "p1", &gone).unwrap().is_empty());
    let file = dir.path().join("s1").join("mixdown.opus");
    assert!(
        super::session_file("s1", "mixdown.opus", file)
            .unwrap()
            .is_none()
    );
}
