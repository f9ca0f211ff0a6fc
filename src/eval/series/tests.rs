//! Tests of [`Table`] and [`read_series`]: delimiters, gaps and located cell errors.

use super::*;
use std::io::Write;

fn build_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

#[test]
fn reads_semicolon_crlf_with_spaces_in_names() {
    let f = build_file(
        "datetime;Volume Flow RateRMS;Current\r\n2020-03-09 10:14:33;32.0;1.5\r\n2020-03-09 10:14:34;31.0;1.6\r\n",
    );
    let s = read_series(f.path(), None, None).unwrap();
    assert_eq!(s.channels, vec!["Volume Flow RateRMS", "Current"]);
    assert_eq!(s.row(1), &[31.0, 1.6]);
    assert_eq!(s.ts[1] - s.ts[0], 1.0);
}

#[test]
fn table_columns_read_gaps_and_reject_them_by_choice() {
    let f = build_file("t,a,b\n1,,x\n2,3,y\n");
    let t = Table::read(f.path()).unwrap();
    assert_eq!(t.header(), ["t", "a", "b"]);
    assert_eq!(t.times(0).unwrap(), vec![1.0, 2.0]);
    let gap = t.numbers(1, EmptyCell::Gap).unwrap();
    assert!(gap[0].is_nan() && gap[1] == 3.0);
    let err = t.numbers(1, EmptyCell::Reject).unwrap_err().to_string();
    assert!(err.contains(":2: column \"a\": not a number: \"\""), "{err}");
    assert_eq!(t.texts(2).unwrap(), ["x", "y"].into_iter().collect());
}

#[test]
fn bad_cells_are_located() {
    let cases = [
        (
            "non-numeric",
            "t,v\n1,2\n2,abc\n",
            ":3: column \"v\": not a number: \"abc\"",
        ),
        (
            "short row",
            "t,v,w\n1,2,3\n2,4\n",
            ":3: column \"w\": row has 2 cells",
        ),
        ("nan", "t,v\n1,NaN\n", ":2: column \"v\": not a finite number"),
        ("bad time", "t,v\nnoon,1\n", ":2: column \"t\": not a timestamp"),
        ("empty", "", "file is empty"),
        ("header only", "t,v\n", "no data rows"),
    ];
    for (name, text, want) in cases {
        let f = build_file(text);
        let err = read_series(f.path(), None, None).unwrap_err().to_string();
        assert!(err.contains(want), "{name}: {err}");
    }
}

#[test]
fn unknown_column_lists_the_header() {
    let f = build_file("t,v\n1,2\n");
    let err = read_series(f.path(), None, Some(&["w".to_string()]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no column named \"w\"") && err.contains("\"v\""),
        "{err}"
    );
}
