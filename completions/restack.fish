# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_restack_global_optspecs
    string join \n c/config= p/profile= url= o/output= q/quiet v/verbose no-color h/help V/version
end

function __fish_restack_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_restack_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_restack_using_subcommand
    set -l cmd (__fish_restack_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c restack -n "__fish_restack_needs_command" -s c -l config -d 'Config file [default: $RESTACK_CONFIG, else <config dir>/restack/config.toml]' -r -F
complete -c restack -n "__fish_restack_needs_command" -s p -l profile -d 'Profile to use (built in: `local`, `embedded`)' -r
complete -c restack -n "__fish_restack_needs_command" -l url -d 'Server URL, overriding the profile\'s' -r
complete -c restack -n "__fish_restack_needs_command" -s o -l output -d 'Output format' -r -f -a "text\t''
json\t''"
complete -c restack -n "__fish_restack_needs_command" -s q -l quiet -d 'Print only what scripts need (a run ID, an output, a status word; `health`: nothing, the exit status says it), no progress'
complete -c restack -n "__fish_restack_needs_command" -s v -l verbose -d 'Show each request, and its answer\'s status, size and time, on stderr (the token shows as `Bearer ***`)'
complete -c restack -n "__fish_restack_needs_command" -l no-color -d 'No colours (also: NO_COLOR in the environment)'
complete -c restack -n "__fish_restack_needs_command" -s h -l help -d 'Print help'
complete -c restack -n "__fish_restack_needs_command" -s V -l version -d 'Print version'
complete -c restack -n "__fish_restack_needs_command" -f -a "agent" -d 'Run agents'
complete -c restack -n "__fish_restack_needs_command" -f -a "workflow" -d 'Run workflows'
complete -c restack -n "__fish_restack_needs_command" -f -a "status" -d 'Show one run, or a table of recent runs of this profile'
complete -c restack -n "__fish_restack_needs_command" -f -a "logs" -d 'Print a run\'s log lines: its agents\' stderr, each retry, and each step\'s start and end'
complete -c restack -n "__fish_restack_needs_command" -f -a "cancel" -d 'Cancel a queued or running run (its agent\'s processes are stopped)'
complete -c restack -n "__fish_restack_needs_command" -f -a "health" -d 'Check that the server answers, and how fast'
complete -c restack -n "__fish_restack_needs_command" -f -a "serve" -d 'Serve the Restack API from the embedded engine'
complete -c restack -n "__fish_restack_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c restack -n "__fish_restack_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c restack -n "__fish_restack_using_subcommand agent; and not __fish_seen_subcommand_from run help" -s c -l config -d 'Config file [default: $RESTACK_CONFIG, else <config dir>/restack/config.toml]' -r -F
complete -c restack -n "__fish_restack_using_subcommand agent; and not __fish_seen_subcommand_from run help" -s p -l profile -d 'Profile to use (built in: `local`, `embedded`)' -r
complete -c restack -n "__fish_restack_using_subcommand agent; and not __fish_seen_subcommand_from run help" -l url -d 'Server URL, overriding the profile\'s' -r
complete -c restack -n "__fish_restack_using_subcommand agent; and not __fish_seen_subcommand_from run help" -s o -l output -d 'Output format' -r -f -a "text\t''
json\t''"
complete -c restack -n "__fish_restack_using_subcommand agent; and not __fish_seen_subcommand_from run help" -s q -l quiet -d 'Print only what scripts need (a run ID, an output, a status word; `health`: nothing, the exit status says it), no progress'
complete -c restack -n "__fish_restack_using_subcommand agent; and not __fish_seen_subcommand_from run help" -s v -l verbose -d 'Show each request, and its answer\'s status, size and time, on stderr (the token shows as `Bearer ***`)'
complete -c restack -n "__fish_restack_using_subcommand agent; and not __fish_seen_subcommand_from run help" -l no-color -d 'No colours (also: NO_COLOR in the environment)'
complete -c restack -n "__fish_restack_using_subcommand agent; and not __fish_seen_subcommand_from run help" -s h -l help -d 'Print help'
complete -c restack -n "__fish_restack_using_subcommand agent; and not __fish_seen_subcommand_from run help" -s V -l version -d 'Print version'
complete -c restack -n "__fish_restack_using_subcommand agent; and not __fish_seen_subcommand_from run help" -f -a "run" -d 'Schedule an agent run (and with --follow, watch it to the end)'
complete -c restack -n "__fish_restack_using_subcommand agent; and not __fish_seen_subcommand_from run help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c restack -n "__fish_restack_using_subcommand agent; and __fish_seen_subcommand_from run" -s i -l input -d 'Input: a JSON file, `-` for stdin, or inline JSON starting with `{`' -r
complete -c restack -n "__fish_restack_using_subcommand agent; and __fish_seen_subcommand_from run" -l set -d 'Set a top-level input key, over `--input`\'s (the value is parsed as JSON when it parses, else a string; each key once)' -r
complete -c restack -n "__fish_restack_using_subcommand agent; and __fish_seen_subcommand_from run" -l timeout -d 'With --follow: stop waiting after this long (exit 6; the run goes on)' -r
complete -c restack -n "__fish_restack_using_subcommand agent; and __fish_seen_subcommand_from run" -s c -l config -d 'Config file [default: $RESTACK_CONFIG, else <config dir>/restack/config.toml]' -r -F
complete -c restack -n "__fish_restack_using_subcommand agent; and __fish_seen_subcommand_from run" -s p -l profile -d 'Profile to use (built in: `local`, `embedded`)' -r
complete -c restack -n "__fish_restack_using_subcommand agent; and __fish_seen_subcommand_from run" -l url -d 'Server URL, overriding the profile\'s' -r
complete -c restack -n "__fish_restack_using_subcommand agent; and __fish_seen_subcommand_from run" -s o -l output -d 'Output format' -r -f -a "text\t''
json\t''"
complete -c restack -n "__fish_restack_using_subcommand agent; and __fish_seen_subcommand_from run" -s f -l follow -d 'Watch the run until it ends; print its output; the exit status reflects the run'
complete -c restack -n "__fish_restack_using_subcommand agent; and __fish_seen_subcommand_from run" -s q -l quiet -d 'Print only what scripts need (a run ID, an output, a status word; `health`: nothing, the exit status says it), no progress'
complete -c restack -n "__fish_restack_using_subcommand agent; and __fish_seen_subcommand_from run" -s v -l verbose -d 'Show each request, and its answer\'s status, size and time, on stderr (the token shows as `Bearer ***`)'
complete -c restack -n "__fish_restack_using_subcommand agent; and __fish_seen_subcommand_from run" -l no-color -d 'No colours (also: NO_COLOR in the environment)'
complete -c restack -n "__fish_restack_using_subcommand agent; and __fish_seen_subcommand_from run" -s h -l help -d 'Print help'
complete -c restack -n "__fish_restack_using_subcommand agent; and __fish_seen_subcommand_from run" -s V -l version -d 'Print version'
complete -c restack -n "__fish_restack_using_subcommand agent; and __fish_seen_subcommand_from help" -f -a "run" -d 'Schedule an agent run (and with --follow, watch it to the end)'
complete -c restack -n "__fish_restack_using_subcommand agent; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c restack -n "__fish_restack_using_subcommand workflow; and not __fish_seen_subcommand_from run help" -s c -l config -d 'Config file [default: $RESTACK_CONFIG, else <config dir>/restack/config.toml]' -r -F
complete -c restack -n "__fish_restack_using_subcommand workflow; and not __fish_seen_subcommand_from run help" -s p -l profile -d 'Profile to use (built in: `local`, `embedded`)' -r
complete -c restack -n "__fish_restack_using_subcommand workflow; and not __fish_seen_subcommand_from run help" -l url -d 'Server URL, overriding the profile\'s' -r
complete -c restack -n "__fish_restack_using_subcommand workflow; and not __fish_seen_subcommand_from run help" -s o -l output -d 'Output format' -r -f -a "text\t''
json\t''"
complete -c restack -n "__fish_restack_using_subcommand workflow; and not __fish_seen_subcommand_from run help" -s q -l quiet -d 'Print only what scripts need (a run ID, an output, a status word; `health`: nothing, the exit status says it), no progress'
complete -c restack -n "__fish_restack_using_subcommand workflow; and not __fish_seen_subcommand_from run help" -s v -l verbose -d 'Show each request, and its answer\'s status, size and time, on stderr (the token shows as `Bearer ***`)'
complete -c restack -n "__fish_restack_using_subcommand workflow; and not __fish_seen_subcommand_from run help" -l no-color -d 'No colours (also: NO_COLOR in the environment)'
complete -c restack -n "__fish_restack_using_subcommand workflow; and not __fish_seen_subcommand_from run help" -s h -l help -d 'Print help'
complete -c restack -n "__fish_restack_using_subcommand workflow; and not __fish_seen_subcommand_from run help" -s V -l version -d 'Print version'
complete -c restack -n "__fish_restack_using_subcommand workflow; and not __fish_seen_subcommand_from run help" -f -a "run" -d 'Schedule a workflow run (and with --follow, watch it to the end)'
complete -c restack -n "__fish_restack_using_subcommand workflow; and not __fish_seen_subcommand_from run help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c restack -n "__fish_restack_using_subcommand workflow; and __fish_seen_subcommand_from run" -s i -l input -d 'Input: a JSON file, `-` for stdin, or inline JSON starting with `{`' -r
complete -c restack -n "__fish_restack_using_subcommand workflow; and __fish_seen_subcommand_from run" -l set -d 'Set a top-level input key, over `--input`\'s (the value is parsed as JSON when it parses, else a string; each key once)' -r
complete -c restack -n "__fish_restack_using_subcommand workflow; and __fish_seen_subcommand_from run" -l timeout -d 'With --follow: stop waiting after this long (exit 6; the run goes on)' -r
complete -c restack -n "__fish_restack_using_subcommand workflow; and __fish_seen_subcommand_from run" -s c -l config -d 'Config file [default: $RESTACK_CONFIG, else <config dir>/restack/config.toml]' -r -F
complete -c restack -n "__fish_restack_using_subcommand workflow; and __fish_seen_subcommand_from run" -s p -l profile -d 'Profile to use (built in: `local`, `embedded`)' -r
complete -c restack -n "__fish_restack_using_subcommand workflow; and __fish_seen_subcommand_from run" -l url -d 'Server URL, overriding the profile\'s' -r
complete -c restack -n "__fish_restack_using_subcommand workflow; and __fish_seen_subcommand_from run" -s o -l output -d 'Output format' -r -f -a "text\t''
json\t''"
complete -c restack -n "__fish_restack_using_subcommand workflow; and __fish_seen_subcommand_from run" -s f -l follow -d 'Watch the run until it ends; print its output; the exit status reflects the run'
complete -c restack -n "__fish_restack_using_subcommand workflow; and __fish_seen_subcommand_from run" -s q -l quiet -d 'Print only what scripts need (a run ID, an output, a status word; `health`: nothing, the exit status says it), no progress'
complete -c restack -n "__fish_restack_using_subcommand workflow; and __fish_seen_subcommand_from run" -s v -l verbose -d 'Show each request, and its answer\'s status, size and time, on stderr (the token shows as `Bearer ***`)'
complete -c restack -n "__fish_restack_using_subcommand workflow; and __fish_seen_subcommand_from run" -l no-color -d 'No colours (also: NO_COLOR in the environment)'
complete -c restack -n "__fish_restack_using_subcommand workflow; and __fish_seen_subcommand_from run" -s h -l help -d 'Print help'
complete -c restack -n "__fish_restack_using_subcommand workflow; and __fish_seen_subcommand_from run" -s V -l version -d 'Print version'
complete -c restack -n "__fish_restack_using_subcommand workflow; and __fish_seen_subcommand_from help" -f -a "run" -d 'Schedule a workflow run (and with --follow, watch it to the end)'
complete -c restack -n "__fish_restack_using_subcommand workflow; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c restack -n "__fish_restack_using_subcommand status" -l agent -d 'The run\'s agent (otherwise taken from the local history); without a run ID, the table shows only this agent\'s runs' -r
complete -c restack -n "__fish_restack_using_subcommand status" -l workflow -d 'The run\'s workflow (otherwise taken from the local history); without a run ID, the table shows only this workflow\'s runs' -r
complete -c restack -n "__fish_restack_using_subcommand status" -l timeout -d 'With --follow: stop waiting after this long (exit 6; the run goes on). Otherwise: how long the lookups may take (one run: exit 3; the table: rows not answered by then show `unknown`) [default without --follow: 30s for one run, 10s for the table]' -r
complete -c restack -n "__fish_restack_using_subcommand status" -l limit -d 'How many recent runs the table shows' -r
complete -c restack -n "__fish_restack_using_subcommand status" -s c -l config -d 'Config file [default: $RESTACK_CONFIG, else <config dir>/restack/config.toml]' -r -F
complete -c restack -n "__fish_restack_using_subcommand status" -s p -l profile -d 'Profile to use (built in: `local`, `embedded`)' -r
complete -c restack -n "__fish_restack_using_subcommand status" -l url -d 'Server URL, overriding the profile\'s' -r
complete -c restack -n "__fish_restack_using_subcommand status" -s o -l output -d 'Output format' -r -f -a "text\t''
json\t''"
complete -c restack -n "__fish_restack_using_subcommand status" -s f -l follow -d 'Watch the run until it ends, then print its output as `agent run -f` does; the exit status reflects the run'
complete -c restack -n "__fish_restack_using_subcommand status" -s q -l quiet -d 'Print only what scripts need (a run ID, an output, a status word; `health`: nothing, the exit status says it), no progress'
complete -c restack -n "__fish_restack_using_subcommand status" -s v -l verbose -d 'Show each request, and its answer\'s status, size and time, on stderr (the token shows as `Bearer ***`)'
complete -c restack -n "__fish_restack_using_subcommand status" -l no-color -d 'No colours (also: NO_COLOR in the environment)'
complete -c restack -n "__fish_restack_using_subcommand status" -s h -l help -d 'Print help'
complete -c restack -n "__fish_restack_using_subcommand status" -s V -l version -d 'Print version'
complete -c restack -n "__fish_restack_using_subcommand logs" -l agent -d 'The run\'s agent (otherwise taken from the local history)' -r
complete -c restack -n "__fish_restack_using_subcommand logs" -l workflow -d 'The run\'s workflow (otherwise taken from the local history)' -r
complete -c restack -n "__fish_restack_using_subcommand logs" -s c -l config -d 'Config file [default: $RESTACK_CONFIG, else <config dir>/restack/config.toml]' -r -F
complete -c restack -n "__fish_restack_using_subcommand logs" -s p -l profile -d 'Profile to use (built in: `local`, `embedded`)' -r
complete -c restack -n "__fish_restack_using_subcommand logs" -l url -d 'Server URL, overriding the profile\'s' -r
complete -c restack -n "__fish_restack_using_subcommand logs" -s o -l output -d 'Output format' -r -f -a "text\t''
json\t''"
complete -c restack -n "__fish_restack_using_subcommand logs" -s q -l quiet -d 'Print only what scripts need (a run ID, an output, a status word; `health`: nothing, the exit status says it), no progress'
complete -c restack -n "__fish_restack_using_subcommand logs" -s v -l verbose -d 'Show each request, and its answer\'s status, size and time, on stderr (the token shows as `Bearer ***`)'
complete -c restack -n "__fish_restack_using_subcommand logs" -l no-color -d 'No colours (also: NO_COLOR in the environment)'
complete -c restack -n "__fish_restack_using_subcommand logs" -s h -l help -d 'Print help'
complete -c restack -n "__fish_restack_using_subcommand logs" -s V -l version -d 'Print version'
complete -c restack -n "__fish_restack_using_subcommand cancel" -l agent -d 'The run\'s agent (otherwise taken from the local history)' -r
complete -c restack -n "__fish_restack_using_subcommand cancel" -l workflow -d 'The run\'s workflow (otherwise taken from the local history)' -r
complete -c restack -n "__fish_restack_using_subcommand cancel" -s c -l config -d 'Config file [default: $RESTACK_CONFIG, else <config dir>/restack/config.toml]' -r -F
complete -c restack -n "__fish_restack_using_subcommand cancel" -s p -l profile -d 'Profile to use (built in: `local`, `embedded`)' -r
complete -c restack -n "__fish_restack_using_subcommand cancel" -l url -d 'Server URL, overriding the profile\'s' -r
complete -c restack -n "__fish_restack_using_subcommand cancel" -s o -l output -d 'Output format' -r -f -a "text\t''
json\t''"
complete -c restack -n "__fish_restack_using_subcommand cancel" -s q -l quiet -d 'Print only what scripts need (a run ID, an output, a status word; `health`: nothing, the exit status says it), no progress'
complete -c restack -n "__fish_restack_using_subcommand cancel" -s v -l verbose -d 'Show each request, and its answer\'s status, size and time, on stderr (the token shows as `Bearer ***`)'
complete -c restack -n "__fish_restack_using_subcommand cancel" -l no-color -d 'No colours (also: NO_COLOR in the environment)'
complete -c restack -n "__fish_restack_using_subcommand cancel" -s h -l help -d 'Print help'
complete -c restack -n "__fish_restack_using_subcommand cancel" -s V -l version -d 'Print version'
complete -c restack -n "__fish_restack_using_subcommand health" -l timeout -d 'Give up on an answer after this long (exit 3) [default: 30s]' -r
complete -c restack -n "__fish_restack_using_subcommand health" -s c -l config -d 'Config file [default: $RESTACK_CONFIG, else <config dir>/restack/config.toml]' -r -F
complete -c restack -n "__fish_restack_using_subcommand health" -s p -l profile -d 'Profile to use (built in: `local`, `embedded`)' -r
complete -c restack -n "__fish_restack_using_subcommand health" -l url -d 'Server URL, overriding the profile\'s' -r
complete -c restack -n "__fish_restack_using_subcommand health" -s o -l output -d 'Output format' -r -f -a "text\t''
json\t''"
complete -c restack -n "__fish_restack_using_subcommand health" -s q -l quiet -d 'Print only what scripts need (a run ID, an output, a status word; `health`: nothing, the exit status says it), no progress'
complete -c restack -n "__fish_restack_using_subcommand health" -s v -l verbose -d 'Show each request, and its answer\'s status, size and time, on stderr (the token shows as `Bearer ***`)'
complete -c restack -n "__fish_restack_using_subcommand health" -l no-color -d 'No colours (also: NO_COLOR in the environment)'
complete -c restack -n "__fish_restack_using_subcommand health" -s h -l help -d 'Print help'
complete -c restack -n "__fish_restack_using_subcommand health" -s V -l version -d 'Print version'
complete -c restack -n "__fish_restack_using_subcommand serve" -l listen -d 'Address to listen on [default: [serve] listen, else 127.0.0.1:6233]' -r
complete -c restack -n "__fish_restack_using_subcommand serve" -l data-dir -d 'Where the database lives [default: [serve] data_dir, else <data dir>/restack]' -r -F
complete -c restack -n "__fish_restack_using_subcommand serve" -s c -l config -d 'Config file [default: $RESTACK_CONFIG, else <config dir>/restack/config.toml]' -r -F
complete -c restack -n "__fish_restack_using_subcommand serve" -s p -l profile -d 'Profile to use (built in: `local`, `embedded`)' -r
complete -c restack -n "__fish_restack_using_subcommand serve" -l url -d 'Server URL, overriding the profile\'s' -r
complete -c restack -n "__fish_restack_using_subcommand serve" -s o -l output -d 'Output format' -r -f -a "text\t''
json\t''"
complete -c restack -n "__fish_restack_using_subcommand serve" -s q -l quiet -d 'Print only what scripts need (a run ID, an output, a status word; `health`: nothing, the exit status says it), no progress'
complete -c restack -n "__fish_restack_using_subcommand serve" -s v -l verbose -d 'Show each request, and its answer\'s status, size and time, on stderr (the token shows as `Bearer ***`)'
complete -c restack -n "__fish_restack_using_subcommand serve" -l no-color -d 'No colours (also: NO_COLOR in the environment)'
complete -c restack -n "__fish_restack_using_subcommand serve" -s h -l help -d 'Print help'
complete -c restack -n "__fish_restack_using_subcommand serve" -s V -l version -d 'Print version'
complete -c restack -n "__fish_restack_using_subcommand completions" -s c -l config -d 'Config file [default: $RESTACK_CONFIG, else <config dir>/restack/config.toml]' -r -F
complete -c restack -n "__fish_restack_using_subcommand completions" -s p -l profile -d 'Profile to use (built in: `local`, `embedded`)' -r
complete -c restack -n "__fish_restack_using_subcommand completions" -l url -d 'Server URL, overriding the profile\'s' -r
complete -c restack -n "__fish_restack_using_subcommand completions" -s o -l output -d 'Output format' -r -f -a "text\t''
json\t''"
complete -c restack -n "__fish_restack_using_subcommand completions" -s q -l quiet -d 'Print only what scripts need (a run ID, an output, a status word; `health`: nothing, the exit status says it), no progress'
complete -c restack -n "__fish_restack_using_subcommand completions" -s v -l verbose -d 'Show each request, and its answer\'s status, size and time, on stderr (the token shows as `Bearer ***`)'
complete -c restack -n "__fish_restack_using_subcommand completions" -l no-color -d 'No colours (also: NO_COLOR in the environment)'
complete -c restack -n "__fish_restack_using_subcommand completions" -s h -l help -d 'Print help'
complete -c restack -n "__fish_restack_using_subcommand completions" -s V -l version -d 'Print version'
complete -c restack -n "__fish_restack_using_subcommand help; and not __fish_seen_subcommand_from agent workflow status logs cancel health serve completions help" -f -a "agent" -d 'Run agents'
complete -c restack -n "__fish_restack_using_subcommand help; and not __fish_seen_subcommand_from agent workflow status logs cancel health serve completions help" -f -a "workflow" -d 'Run workflows'
complete -c restack -n "__fish_restack_using_subcommand help; and not __fish_seen_subcommand_from agent workflow status logs cancel health serve completions help" -f -a "status" -d 'Show one run, or a table of recent runs of this profile'
complete -c restack -n "__fish_restack_using_subcommand help; and not __fish_seen_subcommand_from agent workflow status logs cancel health serve completions help" -f -a "logs" -d 'Print a run\'s log lines: its agents\' stderr, each retry, and each step\'s start and end'
complete -c restack -n "__fish_restack_using_subcommand help; and not __fish_seen_subcommand_from agent workflow status logs cancel health serve completions help" -f -a "cancel" -d 'Cancel a queued or running run (its agent\'s processes are stopped)'
complete -c restack -n "__fish_restack_using_subcommand help; and not __fish_seen_subcommand_from agent workflow status logs cancel health serve completions help" -f -a "health" -d 'Check that the server answers, and how fast'
complete -c restack -n "__fish_restack_using_subcommand help; and not __fish_seen_subcommand_from agent workflow status logs cancel health serve completions help" -f -a "serve" -d 'Serve the Restack API from the embedded engine'
complete -c restack -n "__fish_restack_using_subcommand help; and not __fish_seen_subcommand_from agent workflow status logs cancel health serve completions help" -f -a "completions" -d 'Print a shell completion script'
complete -c restack -n "__fish_restack_using_subcommand help; and not __fish_seen_subcommand_from agent workflow status logs cancel health serve completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c restack -n "__fish_restack_using_subcommand help; and __fish_seen_subcommand_from agent" -f -a "run" -d 'Schedule an agent run (and with --follow, watch it to the end)'
complete -c restack -n "__fish_restack_using_subcommand help; and __fish_seen_subcommand_from workflow" -f -a "run" -d 'Schedule a workflow run (and with --follow, watch it to the end)'
complete -c restack -n "__fish_restack_using_subcommand completions" -f -a "bash elvish fish powershell zsh"
