# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_anomalyd_global_optspecs
    string join \n log= log-format= h/help V/version
end

function __fish_anomalyd_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_anomalyd_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_anomalyd_using_subcommand
    set -l cmd (__fish_anomalyd_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c anomalyd -n "__fish_anomalyd_needs_command" -l log -d 'Log filter (tracing-subscriber EnvFilter syntax), e.g. `info` or `anomalyd=debug`. Without it RUST_LOG is used; else `info` (`warn` for `demo`, whose output is the alerts)' -r
complete -c anomalyd -n "__fish_anomalyd_needs_command" -l log-format -d 'Log line format on stderr: `text` (ANSI colour only on a terminal, syslog priority prefixes under journald) or `json` (one object per line)' -r -f -a "text\t'Human-readable lines (priority-prefixed under journald)'
json\t'One JSON object per line'"
complete -c anomalyd -n "__fish_anomalyd_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c anomalyd -n "__fish_anomalyd_needs_command" -s V -l version -d 'Print version'
complete -c anomalyd -n "__fish_anomalyd_needs_command" -f -a "run" -d 'Run the daemon in the foreground (systemd Type=notify)'
complete -c anomalyd -n "__fish_anomalyd_needs_command" -f -a "demo" -d 'Embedded broker + simulated sensors + daemon; prints alerts as they happen'
complete -c anomalyd -n "__fish_anomalyd_needs_command" -f -a "simulate" -d 'Publish synthetic multichannel telemetry with injected anomalies'
complete -c anomalyd -n "__fish_anomalyd_needs_command" -f -a "check-config" -d 'Check a config file: exit 0, or exit 2 listing every problem with its dotted key'
complete -c anomalyd -n "__fish_anomalyd_needs_command" -f -a "replay" -d 'Score a CSV offline with the daemon\'s detector; one output row per input row'
complete -c anomalyd -n "__fish_anomalyd_needs_command" -f -a "eval" -d 'Score a labelled corpus (NAB layout) and/or SKAB files with the detector'
complete -c anomalyd -n "__fish_anomalyd_needs_command" -f -a "plot" -d 'Plot a replay CSV: a panel per channel, scores on a log scale with the threshold, anomaly_score, alert spans and labelled windows shaded'
complete -c anomalyd -n "__fish_anomalyd_needs_command" -f -a "generate-assets" -d 'Write the man pages and shell completions (packaging; see `dist/`)'
complete -c anomalyd -n "__fish_anomalyd_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c anomalyd -n "__fish_anomalyd_using_subcommand run" -s c -l config -d 'The TOML file' -r -F
complete -c anomalyd -n "__fish_anomalyd_using_subcommand run" -l log -d 'Log filter (tracing-subscriber EnvFilter syntax), e.g. `info` or `anomalyd=debug`. Without it RUST_LOG is used; else `info` (`warn` for `demo`, whose output is the alerts)' -r
complete -c anomalyd -n "__fish_anomalyd_using_subcommand run" -l log-format -d 'Log line format on stderr: `text` (ANSI colour only on a terminal, syslog priority prefixes under journald) or `json` (one object per line)' -r -f -a "text\t'Human-readable lines (priority-prefixed under journald)'
json\t'One JSON object per line'"
complete -c anomalyd -n "__fish_anomalyd_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c anomalyd -n "__fish_anomalyd_using_subcommand run" -s V -l version -d 'Print version'
complete -c anomalyd -n "__fish_anomalyd_using_subcommand demo" -l seconds -d 'Stop after this many seconds' -r
complete -c anomalyd -n "__fish_anomalyd_using_subcommand demo" -l log -d 'Log filter (tracing-subscriber EnvFilter syntax), e.g. `info` or `anomalyd=debug`. Without it RUST_LOG is used; else `info` (`warn` for `demo`, whose output is the alerts)' -r
complete -c anomalyd -n "__fish_anomalyd_using_subcommand demo" -l log-format -d 'Log line format on stderr: `text` (ANSI colour only on a terminal, syslog priority prefixes under journald) or `json` (one object per line)' -r -f -a "text\t'Human-readable lines (priority-prefixed under journald)'
json\t'One JSON object per line'"
complete -c anomalyd -n "__fish_anomalyd_using_subcommand demo" -l print-config -d 'Print the config the demo\'s daemon runs (and the simulate command that feeds it) and exit, to run the same against a real broker'
complete -c anomalyd -n "__fish_anomalyd_using_subcommand demo" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c anomalyd -n "__fish_anomalyd_using_subcommand demo" -s V -l version -d 'Print version'
complete -c anomalyd -n "__fish_anomalyd_using_subcommand simulate" -l host -d 'Broker host' -r
complete -c anomalyd -n "__fish_anomalyd_using_subcommand simulate" -l port -d 'Broker port' -r
complete -c anomalyd -n "__fish_anomalyd_using_subcommand simulate" -l sensors -d 'Number of sensors' -r
complete -c anomalyd -n "__fish_anomalyd_using_subcommand simulate" -l rate -d 'Readings per second per sensor' -r
complete -c anomalyd -n "__fish_anomalyd_using_subcommand simulate" -l seed -d 'RNG seed' -r
complete -c anomalyd -n "__fish_anomalyd_using_subcommand simulate" -l anomaly-every -d 'Mean seconds between injected anomalies per sensor' -r
complete -c anomalyd -n "__fish_anomalyd_using_subcommand simulate" -l warmup -d 'Seconds of clean data before the first anomaly' -r
complete -c anomalyd -n "__fish_anomalyd_using_subcommand simulate" -l load-period -d 'Period of the normal load cycle, seconds' -r
complete -c anomalyd -n "__fish_anomalyd_using_subcommand simulate" -l seconds -d 'Stop after this many seconds (default: until Ctrl-C)' -r
complete -c anomalyd -n "__fish_anomalyd_using_subcommand simulate" -l prefix -d 'Topics are `<prefix>/<sensor>/telemetry`' -r
complete -c anomalyd -n "__fish_anomalyd_using_subcommand simulate" -l log -d 'Log filter (tracing-subscriber EnvFilter syntax), e.g. `info` or `anomalyd=debug`. Without it RUST_LOG is used; else `info` (`warn` for `demo`, whose output is the alerts)' -r
complete -c anomalyd -n "__fish_anomalyd_using_subcommand simulate" -l log-format -d 'Log line format on stderr: `text` (ANSI colour only on a terminal, syslog priority prefixes under journald) or `json` (one object per line)' -r -f -a "text\t'Human-readable lines (priority-prefixed under journald)'
json\t'One JSON object per line'"
complete -c anomalyd -n "__fish_anomalyd_using_subcommand simulate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c anomalyd -n "__fish_anomalyd_using_subcommand simulate" -s V -l version -d 'Print version'
complete -c anomalyd -n "__fish_anomalyd_using_subcommand check-config" -s c -l config -d 'The TOML file' -r -F
complete -c anomalyd -n "__fish_anomalyd_using_subcommand check-config" -l log -d 'Log filter (tracing-subscriber EnvFilter syntax), e.g. `info` or `anomalyd=debug`. Without it RUST_LOG is used; else `info` (`warn` for `demo`, whose output is the alerts)' -r
complete -c anomalyd -n "__fish_anomalyd_using_subcommand check-config" -l log-format -d 'Log line format on stderr: `text` (ANSI colour only on a terminal, syslog priority prefixes under journald) or `json` (one object per line)' -r -f -a "text\t'Human-readable lines (priority-prefixed under journald)'
json\t'One JSON object per line'"
complete -c anomalyd -n "__fish_anomalyd_using_subcommand check-config" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c anomalyd -n "__fish_anomalyd_using_subcommand check-config" -s V -l version -d 'Print version'
complete -c anomalyd -n "__fish_anomalyd_using_subcommand replay" -s c -l config -d 'The TOML file' -r -F
complete -c anomalyd -n "__fish_anomalyd_using_subcommand replay" -l input -d 'Input CSV with a header' -r -F
complete -c anomalyd -n "__fish_anomalyd_using_subcommand replay" -l output -d 'Output CSV (default: standard output)' -r -F
complete -c anomalyd -n "__fish_anomalyd_using_subcommand replay" -l columns -d 'Channel columns, comma separated (default: every column but the time)' -r
complete -c anomalyd -n "__fish_anomalyd_using_subcommand replay" -l timestamp-column -d 'The time column (default: the first)' -r
complete -c anomalyd -n "__fish_anomalyd_using_subcommand replay" -l sensor -d 'The sensor id the rows belong to, as the daemon will see it (default: the input\'s file name without extension)' -r
complete -c anomalyd -n "__fish_anomalyd_using_subcommand replay" -l snapshot-out -d 'Also write the detector\'s state after the last row as a snapshot into this state directory (`[state] dir`): a daemon started on it scores the sensor at once instead of warming up. Channels are then taken in the order the daemon sees them: `--columns` as given, else the first source\'s `channels`, else every column but the time, sorted by name' -r -F
complete -c anomalyd -n "__fish_anomalyd_using_subcommand replay" -l log -d 'Log filter (tracing-subscriber EnvFilter syntax), e.g. `info` or `anomalyd=debug`. Without it RUST_LOG is used; else `info` (`warn` for `demo`, whose output is the alerts)' -r
complete -c anomalyd -n "__fish_anomalyd_using_subcommand replay" -l log-format -d 'Log line format on stderr: `text` (ANSI colour only on a terminal, syslog priority prefixes under journald) or `json` (one object per line)' -r -f -a "text\t'Human-readable lines (priority-prefixed under journald)'
json\t'One JSON object per line'"
complete -c anomalyd -n "__fish_anomalyd_using_subcommand replay" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c anomalyd -n "__fish_anomalyd_using_subcommand replay" -s V -l version -d 'Print version'
complete -c anomalyd -n "__fish_anomalyd_using_subcommand eval" -l config -d 'The TOML file used for NAB (and SKAB unless --skab-config is given)' -r -F
complete -c anomalyd -n "__fish_anomalyd_using_subcommand eval" -l corpus -d 'NAB data directory (`<category>/<file>.csv`)' -r -F
complete -c anomalyd -n "__fish_anomalyd_using_subcommand eval" -l labels -d 'NAB `combined_windows.json`' -r -F
complete -c anomalyd -n "__fish_anomalyd_using_subcommand eval" -l scores -d 'Score precomputed `anomaly_score` CSVs from this directory instead of replaying' -r -F
complete -c anomalyd -n "__fish_anomalyd_using_subcommand eval" -l skab -d 'SKAB directory of semicolon CSVs (e.g. valve1)' -r -F
complete -c anomalyd -n "__fish_anomalyd_using_subcommand eval" -l skab-config -d 'Config for the SKAB run (default: --config)' -r -F
complete -c anomalyd -n "__fish_anomalyd_using_subcommand eval" -l report -d 'Splice the results table into this Markdown file (e.g. docs/quality.md)' -r -F
complete -c anomalyd -n "__fish_anomalyd_using_subcommand eval" -l threads -d 'Worker threads (default: every core)' -r
complete -c anomalyd -n "__fish_anomalyd_using_subcommand eval" -l seeds -d 'Run every detector with this many seeds (`model.seed`, `model.seed + 1`, …) and report each seed, their mean and their spread' -r
complete -c anomalyd -n "__fish_anomalyd_using_subcommand eval" -l inject -d 'A recording of normal operation (any CSV `replay` reads) to inject synthetic faults into (repeatable); reports which kinds each detector catches, how soon, and its false alarms on the recording as it is. Uses --config' -r -F
complete -c anomalyd -n "__fish_anomalyd_using_subcommand eval" -l log -d 'Log filter (tracing-subscriber EnvFilter syntax), e.g. `info` or `anomalyd=debug`. Without it RUST_LOG is used; else `info` (`warn` for `demo`, whose output is the alerts)' -r
complete -c anomalyd -n "__fish_anomalyd_using_subcommand eval" -l log-format -d 'Log line format on stderr: `text` (ANSI colour only on a terminal, syslog priority prefixes under journald) or `json` (one object per line)' -r -f -a "text\t'Human-readable lines (priority-prefixed under journald)'
json\t'One JSON object per line'"
complete -c anomalyd -n "__fish_anomalyd_using_subcommand eval" -l compare -d 'Run the three autoencoder kinds, PCA and a trivial baseline side by side'
complete -c anomalyd -n "__fish_anomalyd_using_subcommand eval" -l per-file -d 'Also print NAB\'s standard score split by file: each detector\'s share of it in NAB points (the mean over its seeds) and the windows it hit, at its own swept threshold. Needs --corpus'
complete -c anomalyd -n "__fish_anomalyd_using_subcommand eval" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c anomalyd -n "__fish_anomalyd_using_subcommand eval" -s V -l version -d 'Print version'
complete -c anomalyd -n "__fish_anomalyd_using_subcommand plot" -l input -d 'Replay output CSV' -r -F
complete -c anomalyd -n "__fish_anomalyd_using_subcommand plot" -l output -d 'Output picture, .svg or .png' -r -F
complete -c anomalyd -n "__fish_anomalyd_using_subcommand plot" -l labels -d 'Labelled windows to shade: NAB\'s `combined_windows.json` (with --label-key), or a CSV with an `anomaly` column (a SKAB file)' -r -F
complete -c anomalyd -n "__fish_anomalyd_using_subcommand plot" -l label-key -d 'Key of the file in NAB labels (e.g. `realKnownCause/nyc_taxi.csv`)' -r
complete -c anomalyd -n "__fish_anomalyd_using_subcommand plot" -l max-channels -d 'Channel panels at most; past it, the channels most deviant during alerts' -r
complete -c anomalyd -n "__fish_anomalyd_using_subcommand plot" -l log -d 'Log filter (tracing-subscriber EnvFilter syntax), e.g. `info` or `anomalyd=debug`. Without it RUST_LOG is used; else `info` (`warn` for `demo`, whose output is the alerts)' -r
complete -c anomalyd -n "__fish_anomalyd_using_subcommand plot" -l log-format -d 'Log line format on stderr: `text` (ANSI colour only on a terminal, syslog priority prefixes under journald) or `json` (one object per line)' -r -f -a "text\t'Human-readable lines (priority-prefixed under journald)'
json\t'One JSON object per line'"
complete -c anomalyd -n "__fish_anomalyd_using_subcommand plot" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c anomalyd -n "__fish_anomalyd_using_subcommand plot" -s V -l version -d 'Print version'
complete -c anomalyd -n "__fish_anomalyd_using_subcommand generate-assets" -l log -d 'Log filter (tracing-subscriber EnvFilter syntax), e.g. `info` or `anomalyd=debug`. Without it RUST_LOG is used; else `info` (`warn` for `demo`, whose output is the alerts)' -r
complete -c anomalyd -n "__fish_anomalyd_using_subcommand generate-assets" -l log-format -d 'Log line format on stderr: `text` (ANSI colour only on a terminal, syslog priority prefixes under journald) or `json` (one object per line)' -r -f -a "text\t'Human-readable lines (priority-prefixed under journald)'
json\t'One JSON object per line'"
complete -c anomalyd -n "__fish_anomalyd_using_subcommand generate-assets" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c anomalyd -n "__fish_anomalyd_using_subcommand generate-assets" -s V -l version -d 'Print version'
complete -c anomalyd -n "__fish_anomalyd_using_subcommand help; and not __fish_seen_subcommand_from run demo simulate check-config replay eval plot generate-assets help" -f -a "run" -d 'Run the daemon in the foreground (systemd Type=notify)'
complete -c anomalyd -n "__fish_anomalyd_using_subcommand help; and not __fish_seen_subcommand_from run demo simulate check-config replay eval plot generate-assets help" -f -a "demo" -d 'Embedded broker + simulated sensors + daemon; prints alerts as they happen'
complete -c anomalyd -n "__fish_anomalyd_using_subcommand help; and not __fish_seen_subcommand_from run demo simulate check-config replay eval plot generate-assets help" -f -a "simulate" -d 'Publish synthetic multichannel telemetry with injected anomalies'
complete -c anomalyd -n "__fish_anomalyd_using_subcommand help; and not __fish_seen_subcommand_from run demo simulate check-config replay eval plot generate-assets help" -f -a "check-config" -d 'Check a config file: exit 0, or exit 2 listing every problem with its dotted key'
complete -c anomalyd -n "__fish_anomalyd_using_subcommand help; and not __fish_seen_subcommand_from run demo simulate check-config replay eval plot generate-assets help" -f -a "replay" -d 'Score a CSV offline with the daemon\'s detector; one output row per input row'
complete -c anomalyd -n "__fish_anomalyd_using_subcommand help; and not __fish_seen_subcommand_from run demo simulate check-config replay eval plot generate-assets help" -f -a "eval" -d 'Score a labelled corpus (NAB layout) and/or SKAB files with the detector'
complete -c anomalyd -n "__fish_anomalyd_using_subcommand help; and not __fish_seen_subcommand_from run demo simulate check-config replay eval plot generate-assets help" -f -a "plot" -d 'Plot a replay CSV: a panel per channel, scores on a log scale with the threshold, anomaly_score, alert spans and labelled windows shaded'
complete -c anomalyd -n "__fish_anomalyd_using_subcommand help; and not __fish_seen_subcommand_from run demo simulate check-config replay eval plot generate-assets help" -f -a "generate-assets" -d 'Write the man pages and shell completions (packaging; see `dist/`)'
complete -c anomalyd -n "__fish_anomalyd_using_subcommand help; and not __fish_seen_subcommand_from run demo simulate check-config replay eval plot generate-assets help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
