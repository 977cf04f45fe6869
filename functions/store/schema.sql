-- hello-retail store for the FaaSMon functions (PostgreSQL 13+).
-- Idempotent: safe to apply on every start.

CREATE TABLE IF NOT EXISTS categories (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9-]{0,39}$'),
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS products (
    id          text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    category    text NOT NULL REFERENCES categories (name),
    name        text NOT NULL,
    brand       text NOT NULL,
    description text NOT NULL DEFAULT '',
    price       numeric(10, 2) NOT NULL CHECK (price >= 0),
    image       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS products_category_idx ON products (category);

CREATE TABLE IF NOT EXISTS photographers (
    id         text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    name       text NOT NULL,
    email      text NOT NULL,
    phone      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- status: assigned (by product-photos-assign) -> recorded (product-photos-record)
--         -> completed (product-photos-success, once a photo was received)
CREATE TABLE IF NOT EXISTS assignments (
    id           text PRIMARY KEY,
    product      text NOT NULL REFERENCES products (id),
    photographer text NOT NULL REFERENCES photographers (id),
    status       text NOT NULL DEFAULT 'assigned'
                 CHECK (status IN ('assigned', 'recorded', 'completed')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS assignments_product_idx ON assignments (product);
CREATE INDEX IF NOT EXISTS assignments_photographer_idx ON assignments (photographer);

-- status: received (product-photos-receive) -> success (product-photos-success)
CREATE TABLE IF NOT EXISTS photos (
    id           bigserial PRIMARY KEY,
    product      text NOT NULL REFERENCES products (id),
    photographer text NOT NULL REFERENCES photographers (id),
    file         text NOT NULL,
    sha256       text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    bytes        bigint NOT NULL CHECK (bytes >= 0),
    source       text NOT NULL,
    status       text NOT NULL DEFAULT 'received' CHECK (status IN ('received', 'success')),
    received_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (product, sha256)
);

-- password_hash = hex(sha256(salt || ':' || password)), see product-purchase-authenticate.
CREATE TABLE IF NOT EXISTS users (
    username      text PRIMARY KEY,
    salt          text NOT NULL,
    password_hash text NOT NULL CHECK (password_hash ~ '^[0-9a-f]{64}$'),
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Written by product-purchase-publish, which records what it is sent
-- (no foreign keys: it is a ledger of what was published).
CREATE TABLE IF NOT EXISTS purchases (
    id                 text PRIMARY KEY,
    username           text NOT NULL,
    product            text NOT NULL,
    quantity           integer NOT NULL CHECK (quantity > 0),
    total              numeric(14, 2) NOT NULL,
    authorization_code text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS purchases_username_idx ON purchases (username, created_at);
