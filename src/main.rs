use std::process::ExitCode;

fn main() -> ExitCode {
    kazoo_port_requests::cli::main()
}
