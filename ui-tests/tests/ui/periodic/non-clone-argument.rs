use tethered::periodic;

struct Connection;

#[periodic(every = "5s")]
async fn tick(connection: Connection) {
    let _ = &connection;
}

fn main() {}
