pub mod cluster;
pub mod dns;
pub mod docker;
pub mod firewall;
pub mod held;
pub mod inspect;
pub mod network;
pub mod podman;
pub mod proxy;
pub mod ps;

/// Rows as aligned columns, each as wide as its widest cell (header
/// included), like `docker network ls`: fixed widths drift as soon as one
/// name or subnet is longer than guessed.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c > 0 {
                line += "   ";
            }
            line += &format!("{cell:<w$}", w = widths[c]);
        }
        out += line.trim_end();
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_columns_fit_the_widest_cell() {
        let rows = vec![
            vec!["NAME".into(), "SUBNET".into(), "N".into()],
            vec![
                "a-very-long-network-name".into(),
                "10.200.100.0/24".into(),
                "3".into(),
            ],
            vec!["b".into(), "".into(), "12".into()],
        ];
        let t = super::table(&rows);
        assert_eq!(
            t,
            "NAME                       SUBNET            N\n\
             a-very-long-network-name   10.200.100.0/24   3\n\
             b                                            12\n"
        );
    }
}
