// A method declaration without a body has no body to scope.
use tethered::scoped;

trait Service {
    #[scoped]
    async fn serve(&self);
}

fn main() {}
